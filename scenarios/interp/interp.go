// Package interp executes scenario scripts inside the guest: it runs the
// keeper and daemon generations (the fusetestd binary), does file I/O on
// the FUSE mount, and checks every step's outcome. It is guest code: it
// imports only the shared leaf packages.
package interp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"fusevm/events"
	"fusevm/scenarios/script"

	"golang.org/x/sys/unix"
)

// Layout of a scenario's files in the guest.
const (
	BackingDir = "/run/fusevm/backing"
	MountDir   = "/run/fusevm/mnt"
	StateDir   = "/run/fusevm/state"
)

// Env is what a scenario runs against.
type Env struct {
	// Claims of the kernel under test, for conditional outcomes.
	Claims map[string]bool
	// Daemon is the fusetestd binary.
	Daemon string
	// Emit reports a step result.
	Emit func(events.Event)
}

// Result is a scenario's outcome as the guest sees it.
type Result struct {
	Verdict string // PASS, FAIL or SKIP
	Detail  string
}

// StepError is a step whose outcome was not the expected one.
type StepError struct {
	Line      int
	Step      string
	Got, Want string
}

func (e *StepError) Error() string {
	return fmt.Sprintf("line %d: %s: got %s, want %s", e.Line, e.Step, e.Got, e.Want)
}

// Run executes s and always cleans up (handles, daemon, keeper, mounts).
func Run(ctx context.Context, s *script.Script, env Env) Result {
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	r := &runner{env: env, handles: map[string]*os.File{}, vars: map[string]string{}}
	defer r.cleanup()
	if err := r.steps(ctx, s.Steps); err != nil {
		if ctx.Err() != nil {
			return Result{Verdict: "FAIL", Detail: fmt.Sprintf("scenario timed out after %s: %v", s.Timeout, err)}
		}
		return Result{Verdict: "FAIL", Detail: err.Error()}
	}
	return Result{Verdict: "PASS"}
}

type runner struct {
	env     Env
	mu      sync.Mutex
	handles map[string]*os.File
	vars    map[string]string
	keeper  *exec.Cmd
	daemon  *exec.Cmd
	flags   []string
	backing bool
}

func (r *runner) steps(ctx context.Context, steps []*script.Step) error {
	for _, st := range steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := r.step(ctx, st); err != nil {
			return err
		}
	}
	return nil
}

func (r *runner) step(ctx context.Context, st *script.Step) error {
	switch st.Op {
	case "repeat":
		n, _ := strconv.Atoi(st.Args[0])
		for i := 0; i < n; i++ {
			if err := r.steps(ctx, st.Body); err != nil {
				return fmt.Errorf("repeat %d/%d: %w", i+1, n, err)
			}
		}
		return nil
	case "race":
		return r.race(ctx, st)
	}
	got, detail := r.do(ctx, st)
	want := st.Expect.Resolve(r.env.Claims)
	if r.env.Emit != nil {
		r.env.Emit(events.Event{Kind: events.Step, Line: st.Line, Detail: fmt.Sprintf("%s %s => %s %s", st.Op, strings.Join(printable(st.Args), " "), got, detail)})
	}
	if got != want {
		e := &StepError{Line: st.Line, Step: st.Op + " " + strings.Join(printable(st.Args), " "), Got: got, Want: want}
		if detail != "" {
			e.Got += " (" + detail + ")"
		}
		return e
	}
	return nil
}

func printable(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if t, q := script.IsQuoted(a); q {
			out[i] = strconv.Quote(t)
		} else {
			out[i] = a
		}
	}
	return out
}

// race runs each thread's body in a loop until the duration is over. A
// thread stops at its first unexpected outcome.
func (r *runner) race(ctx context.Context, st *script.Step) error {
	d, _ := time.ParseDuration(st.Args[0])
	rctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(st.Body))
	for i, th := range st.Body {
		wg.Add(1)
		go func(i int, th *script.Step) {
			defer wg.Done()
			for rctx.Err() == nil {
				if err := r.steps(rctx, th.Body); err != nil {
					if rctx.Err() == nil {
						errs[i] = fmt.Errorf("thread at line %d: %w", th.Line, err)
						cancel()
					}
					return
				}
			}
		}(i, th)
	}
	wg.Wait()
	return errors.Join(errs...)
}

// outcome maps an error to an outcome name: ok, or the errno's name.
func outcome(err error) (string, string) {
	if err == nil {
		return "ok", ""
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return unix.ErrnoName(errno), ""
	}
	return "error", err.Error()
}

// arg resolves a Value operand: a quoted string or $var.
func (r *runner) arg(a string) (string, error) {
	if t, q := script.IsQuoted(a); q {
		return t, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.vars[strings.TrimPrefix(a, "$")]
	if !ok {
		return "", fmt.Errorf("%s is not set", a)
	}
	return v, nil
}

func (r *runner) do(ctx context.Context, st *script.Step) (string, string) {
	a := st.Args
	switch st.Op {
	case "backing":
		return outcome(r.mountBacking(a[0]))
	case "file":
		content, err := r.arg(a[1])
		if err != nil {
			return "error", err.Error()
		}
		return outcome(os.WriteFile(filepath.Join(BackingDir, a[0]), []byte(content), 0o644))
	case "mount":
		return outcome(r.mount(ctx, a))
	case "restart":
		return outcome(r.startDaemon(ctx, a))
	case "crash":
		return outcome(r.crash())
	case "umount":
		return outcome(r.umount(ctx))
	case "open":
		return r.open(a[0], a[1], a[2:])
	case "read":
		return r.read(a[0], a[1])
	case "write":
		f, err := r.handle(a[0])
		if err != nil {
			return "error", err.Error()
		}
		content, err := r.arg(a[1])
		if err != nil {
			return "error", err.Error()
		}
		_, err = f.WriteAt([]byte(content), 0)
		return outcome(err)
	case "close":
		r.mu.Lock()
		f, ok := r.handles[a[0]]
		delete(r.handles, a[0])
		r.mu.Unlock()
		if !ok {
			return "error", "no open handle " + a[0]
		}
		return outcome(f.Close())
	case "served":
		st, err := r.status(ctx)
		if err != nil {
			return "error", err.Error()
		}
		want, _ := strconv.Atoi(a[1])
		if got := st.Requests[strings.ToUpper(a[0])]; got != want {
			return "error", fmt.Sprintf("%s served %d times, want %d", a[0], got, want)
		}
		return "ok", ""
	case "passthrough":
		st, err := r.status(ctx)
		if err != nil {
			return "error", err.Error()
		}
		if !st.Passthrough {
			return "error", "passthrough was not negotiated"
		}
		return "ok", ""
	case "sleep":
		d, _ := time.ParseDuration(a[0])
		select {
		case <-time.After(d):
			return "ok", ""
		case <-ctx.Done():
			return outcome(ctx.Err())
		}
	}
	return "error", "op " + st.Op + " is not implemented by this agent"
}

func (r *runner) handle(name string) (*os.File, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.handles[name]
	if !ok {
		return nil, fmt.Errorf("no open handle %s", name)
	}
	return f, nil
}

func (r *runner) open(h, path string, flags []string) (string, string) {
	mode := os.O_RDONLY
	for _, f := range flags {
		switch f {
		case "rw":
			mode = mode&^os.O_RDONLY | os.O_RDWR
		case "create":
			mode |= os.O_CREATE
		default:
			return "error", "unknown open flag " + f
		}
	}
	f, err := os.OpenFile(filepath.Join(MountDir, path), mode, 0o644)
	if err != nil {
		return outcome(err)
	}
	r.mu.Lock()
	if old, ok := r.handles[h]; ok {
		old.Close()
	}
	r.handles[h] = f
	r.mu.Unlock()
	return "ok", ""
}

func (r *runner) read(h, want string) (string, string) {
	f, err := r.handle(h)
	if err != nil {
		return "error", err.Error()
	}
	content, err := r.arg(want)
	if err != nil {
		return "error", err.Error()
	}
	buf := make([]byte, len(content))
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return outcome(err)
	}
	if string(buf[:n]) != content {
		return "error", fmt.Sprintf("read %q", buf[:n])
	}
	return "ok", ""
}

func (r *runner) mountBacking(size string) error {
	if err := os.MkdirAll(BackingDir, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", BackingDir, "tmpfs", 0, "size="+size); err != nil {
		return err
	}
	r.backing = true
	return nil
}

// daemonStatus is the part of `fusetestd status` the interpreter reads.
type daemonStatus struct {
	Generation  int            `json:"generation"`
	Serving     bool           `json:"serving"`
	Passthrough bool           `json:"passthrough"`
	Requests    map[string]int `json:"requests"`
}

func (r *runner) status(ctx context.Context) (*daemonStatus, error) {
	out, err := exec.CommandContext(ctx, r.env.Daemon, "status", "--state", StateDir).Output()
	if err != nil {
		return nil, fmt.Errorf("fusetestd status: %v", err)
	}
	var st daemonStatus
	if err := json.Unmarshal(out, &st); err != nil {
		return nil, fmt.Errorf("fusetestd status: %v", err)
	}
	return &st, nil
}

func (r *runner) mount(ctx context.Context, flags []string) error {
	for _, d := range []string{MountDir, StateDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	args := []string{"keeper", "--mount", MountDir, "--state", StateDir}
	for _, f := range flags {
		if f == "no-passthrough" {
			args = append(args, "--no-passthrough")
		}
	}
	k := exec.Command(r.env.Daemon, args...)
	k.Stdout, k.Stderr = os.Stderr, os.Stderr
	if err := k.Start(); err != nil {
		return err
	}
	r.keeper = k
	if err := waitFile(ctx, filepath.Join(StateDir, "keeper.sock")); err != nil {
		return fmt.Errorf("keeper did not come up: %w", err)
	}
	return r.startDaemon(ctx, flags)
}

// startDaemon starts a daemon generation and waits until it serves.
func (r *runner) startDaemon(ctx context.Context, flags []string) error {
	args := []string{"serve", "--state", StateDir, "--backing", BackingDir}
	for _, f := range flags {
		if f == "no-passthrough" {
			continue
		}
		args = append(args, "--"+f)
	}
	d := exec.Command(r.env.Daemon, args...)
	d.Stdout, d.Stderr = os.Stderr, os.Stderr
	if err := d.Start(); err != nil {
		return err
	}
	r.daemon = d
	for {
		st, err := r.status(ctx)
		if err == nil && st.Serving {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("daemon did not start serving: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *runner) crash() error {
	if r.daemon == nil {
		return errors.New("no daemon running")
	}
	r.daemon.Process.Signal(syscall.SIGKILL)
	r.daemon.Wait()
	r.daemon = nil
	return nil
}

func (r *runner) umount(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, r.env.Daemon, "umount", "--state", StateDir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("fusetestd umount: %v: %s", err, strings.TrimSpace(string(out)))
	}
	if r.keeper != nil {
		r.keeper.Wait()
		r.keeper = nil
	}
	if r.daemon != nil {
		r.daemon.Process.Signal(syscall.SIGKILL)
		r.daemon.Wait()
		r.daemon = nil
	}
	return nil
}

// cleanup leaves the guest as it found it: a dead daemon cannot answer the
// FLUSH a close sends, so the connection is aborted first.
func (r *runner) cleanup() {
	if r.daemon == nil {
		abortAll()
	}
	r.mu.Lock()
	for h, f := range r.handles {
		f.Close()
		delete(r.handles, h)
	}
	r.mu.Unlock()
	if r.keeper != nil || r.daemon != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if r.umount(ctx) != nil {
			abortAll()
			unix.Unmount(MountDir, unix.MNT_DETACH)
		}
		cancel()
		for _, c := range []*exec.Cmd{r.daemon, r.keeper} {
			if c != nil {
				c.Process.Kill()
				c.Wait()
			}
		}
	}
	if r.backing {
		unix.Unmount(BackingDir, unix.MNT_DETACH)
	}
	os.RemoveAll(StateDir)
}

// abortAll aborts every FUSE connection through fusectl.
func abortAll() {
	conns, _ := filepath.Glob("/sys/fs/fuse/connections/*/abort")
	for _, c := range conns {
		os.WriteFile(c, []byte("1"), 0o200)
	}
}

func waitFile(ctx context.Context, path string) error {
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}
