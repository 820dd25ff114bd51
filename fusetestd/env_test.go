package fusetestd_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"fusevm/fuseabi"
	"fusevm/fusetestd/ctl"
)

// The tests run the real fusetestd binary, built once in TestMain, as
// separate processes, so that SIGKILL is a real crash. They need /dev/fuse
// and CAP_SYS_ADMIN and skip without.

var (
	binary     string
	skipReason string
)

// dropCapEnv makes the test binary, re-executed, drop CAP_SYS_ADMIN from
// its bounding set and exec fusetestd with its arguments: a daemon without
// the capability, with no dependency on setpriv or capsh.
const dropCapEnv = "FUSETESTD_TEST_DROP_CAP_SYS_ADMIN"

// argSep separates the arguments in dropCapEnv's value.
const argSep = "\x1f"

func TestMain(m *testing.M) {
	if os.Getenv(dropCapEnv) != "" {
		execWithoutSysAdmin()
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	switch {
	case !hasCapSysAdmin():
		skipReason = "needs CAP_SYS_ADMIN to mount FUSE and register backing files"
	case !hasDevFuse():
		skipReason = "no usable /dev/fuse"
	}
	if skipReason == "" {
		dir, err := os.MkdirTemp("", "fusetestd-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		binary = filepath.Join(dir, "fusetestd")
		out, err := exec.Command("go", "build", "-o", binary, "fusevm/cmd/fusetestd").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build fusetestd: %v\n%s", err, out)
			return 1
		}
	}
	return m.Run()
}

func hasCapSysAdmin() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[0].Effective&(1<<unix.CAP_SYS_ADMIN) != 0
}

func hasDevFuse() bool {
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
}

func execWithoutSysAdmin() {
	runtime.LockOSThread() // capabilities are per thread: drop and exec on one
	if err := unix.Prctl(unix.PR_CAPBSET_DROP, unix.CAP_SYS_ADMIN, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "drop CAP_SYS_ADMIN:", err)
		os.Exit(3)
	}
	args := strings.Split(os.Getenv(dropCapEnv), argSep)
	err := syscall.Exec(args[0], args, os.Environ())
	fmt.Fprintln(os.Stderr, "exec:", err)
	os.Exit(3)
}

// requireFuse skips tb where the host cannot run the daemon.
func requireFuse(tb testing.TB) {
	tb.Helper()
	if skipReason != "" {
		tb.Skip(skipReason)
	}
}

// proc is a fusetestd process.
type proc struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	lines  chan string // stdout, line by line
	name   string
	done   chan struct{}
	err    error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// command returns the command running fusetestd with args, without
// CAP_SYS_ADMIN if dropCap.
func command(ctx context.Context, dropCap bool, args ...string) *exec.Cmd {
	if !dropCap {
		return exec.CommandContext(ctx, binary, args...)
	}
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), dropCapEnv+"="+strings.Join(append([]string{binary}, args...), argSep))
	return cmd
}

// start runs fusetestd with args; the process is reaped in the background.
func start(tb testing.TB, name string, dropCap bool, args ...string) *proc {
	tb.Helper()
	p := &proc{name: name, stderr: &syncBuffer{}, lines: make(chan string, 16), done: make(chan struct{})}
	p.cmd = command(context.Background(), dropCap, args...)
	p.cmd.Stderr = p.stderr
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			default: // nobody waits for more
			}
		}
		io.Copy(io.Discard, out)
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p
}

// waitLine waits for p's stdout line starting with prefix.
func (p *proc) waitLine(tb testing.TB, prefix string) string {
	tb.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case line := <-p.lines:
			if strings.HasPrefix(line, prefix) {
				return line
			}
		case <-p.done:
			tb.Fatalf("%s exited before printing %q: %v: %s", p.name, prefix, p.err, p.stderr)
		case <-timeout:
			tb.Fatalf("%s did not print %q within 10s: %s", p.name, prefix, p.stderr)
		}
	}
}

// kill sends sig and waits for the process to end.
func (p *proc) kill(tb testing.TB, sig syscall.Signal) {
	tb.Helper()
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		tb.Fatalf("%s did not exit on %v", p.name, sig)
	}
}

// env is one mount: a small dedicated tmpfs as backing directory, a keeper,
// and the daemon generations started on it.
type env struct {
	tb                       testing.TB
	dir, mnt, state, backing string
	conn                     uint32
	keeper                   *proc
	daemons                  []*proc
	fds                      []int
}

// newEnv mounts the backing tmpfs, fills it with files, and starts a keeper.
func newEnv(tb testing.TB, files map[string]string, keeperArgs ...string) *env {
	tb.Helper()
	requireFuse(tb)
	dir := tb.TempDir()
	e := &env{tb: tb, dir: dir, mnt: filepath.Join(dir, "mnt"), state: filepath.Join(dir, "state"), backing: filepath.Join(dir, "backing")}
	for _, d := range []string{e.mnt, e.state, e.backing} {
		if err := os.Mkdir(d, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	if err := unix.Mount("tmpfs", e.backing, "tmpfs", 0, "size=4m"); err != nil {
		tb.Fatalf("mount backing tmpfs: %v", err)
	}
	tb.Cleanup(e.cleanup)
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(e.backing, name), []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	args := append([]string{"keeper", "--mount", e.mnt, "--state", e.state}, keeperArgs...)
	e.keeper = start(tb, "keeper", false, args...)
	line := e.keeper.waitLine(tb, "keeper ready")
	if _, err := fmt.Sscanf(line, "keeper ready conn=%d", &e.conn); err != nil {
		tb.Fatalf("keeper ready line %q: %v", line, err)
	}
	return e
}

// cleanup leaves no mount and no process behind, whatever the test did:
// abort the connection first so that nothing blocks on it.
func (e *env) cleanup() {
	if conn, err := fuseabi.MountConn(e.mnt); err == nil && conn == e.conn {
		fuseabi.Abort(e.conn)
	}
	for _, fd := range e.fds {
		unix.Close(fd)
	}
	for _, p := range append(e.daemons, e.keeper) {
		if p != nil {
			p.cmd.Process.Kill()
			<-p.done
		}
	}
	if e.tb.Failed() {
		for _, p := range append(e.daemons, e.keeper) {
			if p != nil {
				e.tb.Logf("%s stderr:\n%s", p.name, p.stderr)
			}
		}
	}
	unix.Unmount(e.mnt, unix.MNT_DETACH)
	unix.Unmount(e.backing, unix.MNT_DETACH)
}

// serve starts a daemon generation and waits until it serves. The test
// process must hold no file open on the mount unless a daemon serves: the
// fork+exec closes them, which sends FLUSH (start the successor as a
// --standby before the crash, as TestCrashKeepsMountAndOpenFile does).
func (e *env) serve(args ...string) *proc {
	e.tb.Helper()
	p := e.startServe(false, args...)
	p.waitLine(e.tb, "serving")
	return p
}

// startServe starts a daemon generation, without CAP_SYS_ADMIN if dropCap.
func (e *env) startServe(dropCap bool, args ...string) *proc {
	e.tb.Helper()
	args = append([]string{"serve", "--state", e.state, "--backing", e.backing}, args...)
	p := start(e.tb, fmt.Sprintf("daemon %d", len(e.daemons)+1), dropCap, args...)
	e.daemons = append(e.daemons, p)
	return p
}

// path returns name's path on the mount.
func (e *env) path(name string) string { return filepath.Join(e.mnt, name) }

// open opens name on the mount; the fd is closed at cleanup unless closed.
func (e *env) open(name string, flags int) (int, error) {
	fd, err := unix.Open(e.path(name), flags|unix.O_CLOEXEC, 0o644)
	if err == nil {
		e.fds = append(e.fds, fd)
	}
	return fd, err
}

func (e *env) mustOpen(name string, flags int) int {
	e.tb.Helper()
	fd, err := e.open(name, flags)
	if err != nil {
		e.tb.Fatalf("open %s: %v", name, err)
	}
	return fd
}

// close closes a passthrough fd; a daemon must be serving (FLUSH).
func (e *env) close(fd int) {
	e.tb.Helper()
	for i, f := range e.fds {
		if f == fd {
			e.fds = append(e.fds[:i], e.fds[i+1:]...)
			break
		}
	}
	if err := unix.Close(fd); err != nil {
		e.tb.Fatalf("close: %v", err)
	}
}

// expectContent reads fd from offset 0 and compares with want.
func (e *env) expectContent(fd int, want string) {
	e.tb.Helper()
	buf := make([]byte, len(want)+16)
	n, err := unix.Pread(fd, buf, 0)
	if err != nil {
		e.tb.Fatalf("pread: %v", err)
	}
	if got := string(buf[:n]); got != want {
		e.tb.Fatalf("read %q, want %q", got, want)
	}
}

// expectFile opens name read-only, checks it reads want and closes it.
func (e *env) expectFile(name, want string) {
	e.tb.Helper()
	fd := e.mustOpen(name, unix.O_RDONLY)
	e.expectContent(fd, want)
	e.close(fd)
}

func (e *env) status() ctl.Status {
	e.tb.Helper()
	cl, err := ctl.Dial(e.state)
	if err != nil {
		e.tb.Fatal(err)
	}
	defer cl.Close()
	st, err := cl.Status()
	if err != nil {
		e.tb.Fatal(err)
	}
	return st
}

func (e *env) keeperStatus() ctl.KeeperStatus {
	e.tb.Helper()
	ks, err := ctl.KeeperStatusOf(e.state)
	if err != nil {
		e.tb.Fatal(err)
	}
	return ks
}

func (e *env) client() *ctl.Client {
	e.tb.Helper()
	cl, err := ctl.Dial(e.state)
	if err != nil {
		e.tb.Fatal(err)
	}
	e.tb.Cleanup(func() { cl.Close() })
	return cl
}

// waitStatus polls the daemon status until cond holds.
func (e *env) waitStatus(what string, cond func(ctl.Status) bool) ctl.Status {
	e.tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := e.status()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			e.tb.Fatalf("waiting for %s; status: %+v", what, st)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// withTimeout runs f and fails tb if it does not return within d.
func withTimeout(tb testing.TB, d time.Duration, what string, f func() error) error {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	res := make(chan error, 1)
	go func() { res <- f() }()
	select {
	case err := <-res:
		return err
	case <-ctx.Done():
		tb.Fatalf("%s: still blocked after %v", what, d)
		return nil
	}
}
