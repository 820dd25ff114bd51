// Package interp executes scenario scripts, in the guest (the agent) and,
// in its tests, on the host: it runs the keeper and daemon generations
// (the fusetestd binary), does file I/O on the FUSE mount, calls the
// backing ioctls, and checks every step's outcome. It is guest code: it
// imports only shared leaf packages.
package interp

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"fusevm/events"
	"fusevm/fuseabi"
	"fusevm/fusetestd/ctl"
	"fusevm/scenarios/script"
	"fusevm/verdict"

	"golang.org/x/sys/unix"
)

// Env is what a scenario runs against.
type Env struct {
	// Claims of the kernel under test, for conditional outcomes.
	Claims map[string]bool
	// Params are per-kernel settings (events.Plan.Params).
	Params map[string]string
	// Root is the absolute directory of the scenario's files: the main
	// backing tmpfs is mounted on Root/backing, a further one named NAME on
	// Root/backing-NAME; the FUSE connection main is mounted on Root/mnt
	// with its daemon's sockets in Root/state, a connection named NAME on
	// Root/mnt-NAME with Root/state-NAME. Every connection serves the main
	// backing tmpfs.
	Root string
	// Daemon is the fusetestd binary.
	Daemon string
	// Spawner starts the keeper and the daemon generations.
	Spawner *Spawner
	// Emit reports a step result.
	Emit func(events.Event)
}

// Result is a scenario's outcome as the guest sees it.
type Result struct {
	Verdict verdict.Verdict // PASS, FAIL, or HANG (a step blocked past the timeout)
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

// Run executes s and always cleans up (handles, every connection's daemon
// and keeper, mounts).
func Run(ctx context.Context, s *script.Script, env Env) Result {
	if !filepath.IsAbs(env.Root) {
		return Result{Verdict: verdict.Fail, Detail: fmt.Sprintf("scenario root %q is not an absolute path", env.Root)}
	}
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	r := &runner{
		env:      env,
		handles:  map[string]*os.File{},
		vars:     map[string]string{},
		async:    map[string]chan error{},
		conns:    map[string]*connection{},
		backings: map[string]bool{},
	}
	done := make(chan error, 1)
	go func() { done <- r.steps(ctx, s.Steps) }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		// A step is blocked in the kernel (a FUSE request nobody answers):
		// aborting the connections makes it return.
		for _, c := range r.connections() {
			r.abortConn(c)
		}
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
		r.cleanup()
		return Result{Verdict: verdict.Hang, Detail: fmt.Sprintf("scenario timed out after %s in %s", s.Timeout, r.currentStep())}
	}
	r.cleanup()
	if err != nil {
		return Result{Verdict: verdict.Fail, Detail: err.Error()}
	}
	return Result{Verdict: verdict.Pass}
}

func (r *runner) currentStep() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.current
}

type runner struct {
	env Env

	mu       sync.Mutex
	handles  map[string]*os.File // global: usable whatever the current connection
	vars     map[string]string
	async    map[string]chan error
	conns    map[string]*connection // the latest mount of each name
	cur      *connection            // the current connection, nil before the first mount
	mounted  []fuseConn             // every FUSE connection mounted, for "connections"
	backings map[string]bool        // the backing filesystems mounted, by name ("" the main one)
	current  string                 // "line N: op args" of the step in progress
}

// connection is one of the scenario's FUSE connections, by name: its
// directories, its keeper and daemon generations, and a dup of its
// /dev/fuse fd for the ioctls.
type connection struct {
	name               string
	mountDir, stateDir string
	keeper             int // pid, 0 when none
	daemon             int // pid, 0 when none
	gen                int
	devfd              int       // -1 when none; guarded by runner.mu
	fc                 *fuseConn // the kernel's connection once mounted; guarded by runner.mu
}

// newConnection returns connection name, not mounted yet: main's
// directories are Root/mnt and Root/state, another's Root/mnt-NAME and
// Root/state-NAME.
func (r *runner) newConnection(name string) *connection {
	suffix := ""
	if name != script.MainConn {
		suffix = "-" + name
	}
	return &connection{
		name:     name,
		mountDir: filepath.Join(r.env.Root, "mnt"+suffix),
		stateDir: filepath.Join(r.env.Root, "state"+suffix),
		devfd:    -1,
	}
}

// conn returns the current connection.
func (r *runner) conn() (*connection, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur == nil {
		return nil, errors.New("no FUSE connection was mounted")
	}
	return r.cur, nil
}

// connections returns the latest connection of each name, by name.
func (r *runner) connections() []*connection {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.SortedFunc(maps.Values(r.conns), func(a, b *connection) int { return strings.Compare(a.name, b.name) })
}

// backingDir is the mount point of backing filesystem name: Root/backing
// for the main one (""), Root/backing-NAME for another.
func (r *runner) backingDir(name string) string {
	if name == "" {
		return filepath.Join(r.env.Root, "backing")
	}
	return filepath.Join(r.env.Root, "backing-"+name)
}

// backingPath is the file a script.BackingPath operand names.
func (r *runner) backingPath(arg string) string {
	name, rel := script.SplitBackingPath(arg)
	return filepath.Join(r.backingDir(name), rel)
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
		counter := "" // repeat N as=VAR: the parser allows this one flag
		if len(st.Args) > 1 {
			counter = strings.TrimPrefix(st.Args[1], "as=")
		}
		for i := 0; i < n; i++ {
			if counter != "" {
				r.mu.Lock()
				r.vars[counter] = strconv.Itoa(i + 1)
				r.mu.Unlock()
			}
			if err := r.steps(ctx, st.Body); err != nil {
				return fmt.Errorf("repeat %d/%d: %w", i+1, n, err)
			}
		}
		return nil
	case "race":
		return r.race(ctx, st)
	case "if":
		v, err := r.value(st.Args[0])
		if err != nil {
			return &StepError{Line: st.Line, Step: "if " + st.Args[0] + " " + st.Args[1], Got: "error (" + err.Error() + ")", Want: "ok"}
		}
		if v != st.Args[1] {
			return nil
		}
		return r.steps(ctx, st.Body)
	}
	text := st.Op + " " + strings.Join(printable(st.Args), " ")
	if !r.inRace(ctx) {
		r.mu.Lock()
		r.current = fmt.Sprintf("line %d: %s", st.Line, strings.TrimSpace(text))
		r.mu.Unlock()
	}
	got, detail := r.do(ctx, st)
	want := st.Expect.Resolve(r.env.Claims)
	if r.env.Emit != nil && !r.inRace(ctx) {
		d := got
		if detail != "" {
			d += " (" + detail + ")"
		}
		r.env.Emit(events.Event{Kind: events.Step, Line: st.Line, Detail: strings.TrimSpace(text) + " => " + d})
	}
	if !script.Accepts(want, got) {
		e := &StepError{Line: st.Line, Step: strings.TrimSpace(text), Got: got, Want: want}
		if detail != "" {
			e.Got += " (" + detail + ")"
		}
		return e
	}
	return nil
}

type raceKey struct{}

func (r *runner) inRace(ctx context.Context) bool { return ctx.Value(raceKey{}) != nil }

func printable(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if t, q := script.IsQuoted(a); q {
			if len(t) > 40 {
				t = t[:40] + "..."
			}
			out[i] = strconv.Quote(t)
		} else {
			out[i] = a
		}
	}
	return out
}

// race runs each thread's body in a loop until the duration is over. A
// thread stops at its first unexpected outcome, and stops the others.
// Steps inside a race emit no events (there may be millions).
func (r *runner) race(ctx context.Context, st *script.Step) error {
	d, _ := time.ParseDuration(st.Args[0])
	if c, err := time.ParseDuration(r.env.Params["race"]); err == nil && c > 0 && c < d {
		d = c // the config's cap (plan.Boot.Race)
	}
	rctx, cancel := context.WithTimeout(context.WithValue(ctx, raceKey{}, true), d)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(st.Body))
	loops := make([]int, len(st.Body))
	for i, th := range st.Body {
		wg.Add(1)
		go func(i int, th *script.Step) {
			defer wg.Done()
			for rctx.Err() == nil {
				if err := r.steps(rctx, th.Body); err != nil {
					if rctx.Err() == nil {
						errs[i] = fmt.Errorf("thread at line %d, loop %d: %w", th.Line, loops[i]+1, err)
						cancel()
					}
					return
				}
				loops[i]++
			}
		}(i, th)
	}
	wg.Wait()
	if r.env.Emit != nil {
		r.env.Emit(events.Event{Kind: events.Step, Line: st.Line, Detail: fmt.Sprintf("race %s (ran %s): loops per thread %v", st.Args[0], d, loops)})
	}
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

func fail(format string, a ...any) (string, string) { return "error", fmt.Sprintf(format, a...) }

// count resolves a positive count: a number, or a $var holding one.
func (r *runner) count(a string) (int, error) {
	v := a
	if strings.HasPrefix(a, "$") {
		var err error
		if v, err = r.value(a); err != nil {
			return 0, err
		}
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%s: want a positive number, got %q", a, v)
	}
	return n, nil
}

// value resolves a Value operand: a quoted string or $var.
func (r *runner) value(a string) (string, error) {
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

func (r *runner) set(name, v string) {
	r.mu.Lock()
	r.vars[name] = v
	r.mu.Unlock()
}

// flags splits key=value and bare flags.
func flags(args []string) map[string]string {
	m := map[string]string{}
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		m[k] = v
	}
	return m
}

// onConn makes a step function of one that acts on the current
// connection.
func onConn(fn func(r *runner, c *connection, ctx context.Context, st *script.Step) (string, string)) stepFunc {
	return func(r *runner, ctx context.Context, st *script.Step) (string, string) {
		c, err := r.conn()
		if err != nil {
			return fail("%v", err)
		}
		return fn(r, c, ctx, st)
	}
}

// do runs one step that is not a block.
func (r *runner) do(ctx context.Context, st *script.Step) (string, string) {
	fn, ok := stepFuncs[st.Op]
	if !ok {
		return fail("op %s is not implemented by this agent", st.Op)
	}
	return fn(r, ctx, st)
}

// stepFunc runs one step and returns its outcome (ok, an errno name, or
// "error") and a detail.
type stepFunc func(r *runner, ctx context.Context, st *script.Step) (string, string)

// stepFuncs implements every op of script.Ops but the blocks, which
// runner.step runs itself.
var stepFuncs = map[string]stepFunc{
	// Setup and daemon life cycle.
	"backing": (*runner).mountBacking,
	"file":    (*runner).file,
	"fill":    (*runner).fill,
	"mount":   (*runner).mount,
	"use":     (*runner).use,
	"restart": onConn(func(r *runner, c *connection, ctx context.Context, st *script.Step) (string, string) {
		return r.startDaemon(ctx, c, st.Args)
	}),
	"crash": onConn(func(_ *runner, c *connection, _ context.Context, _ *script.Step) (string, string) {
		return outcome(c.crash())
	}),
	"umount": onConn(func(r *runner, c *connection, _ context.Context, _ *script.Step) (string, string) {
		return outcome(r.umount(c))
	}),
	"abort": onConn(func(r *runner, c *connection, _ context.Context, _ *script.Step) (string, string) {
		return outcome(r.abortConn(c))
	}),
	// File I/O on the FUSE mount.
	"open":       onConn((*runner).open),
	"read":       (*runner).read,
	"mmap-read":  (*runner).read,
	"write":      (*runner).write,
	"close":      (*runner).close,
	"stat":       onConn((*runner).stat),
	"stat-async": onConn((*runner).statAsync),
	"wait":       (*runner).wait,
	// The daemon, through its control socket.
	"passthrough": onConn((*runner).statusCheck),
	"served":      onConn((*runner).statusCheck),
	"recovery":    onConn((*runner).statusCheck),
	"ids":         onConn((*runner).statusCheck),
	"answer-open": onConn((*runner).answerOpen),
	"hold": onConn(func(_ *runner, c *connection, _ context.Context, st *script.Step) (string, string) {
		return withCtl(c, func(cl *ctl.Client) error { return cl.Hold(strings.ToUpper(st.Args[0])) })
	}),
	"release": onConn(func(_ *runner, c *connection, _ context.Context, st *script.Step) (string, string) {
		return withCtl(c, func(cl *ctl.Client) error { _, err := cl.ReleaseHeld(strings.ToUpper(st.Args[0])); return err })
	}),
	// The kernel interface.
	"ioctl": onConn((*runner).ioctl),
	// The backing filesystems and the connections.
	"free-space": (*runner).freeSpace,
	"unlink-backing": func(r *runner, _ context.Context, st *script.Step) (string, string) {
		return outcome(os.Remove(r.backingPath(st.Args[0])))
	},
	"link-backing": func(r *runner, _ context.Context, st *script.Step) (string, string) {
		return outcome(os.Link(r.backingPath(st.Args[0]), r.backingPath(st.Args[1])))
	},
	"backing-ino":    (*runner).backingIno,
	"kernel-memory":  (*runner).kernelMemory,
	"umount-backing": (*runner).umountBacking,
	"connections":    (*runner).countConnections,
	// Control flow and kernel debugging.
	"sleep": (*runner).sleep,
	"sysrq": (*runner).sysrq,
}

func (r *runner) file(_ context.Context, st *script.Step) (string, string) {
	content, err := r.value(st.Args[1])
	if err != nil {
		return fail("%v", err)
	}
	return outcome(os.WriteFile(r.backingPath(st.Args[0]), []byte(content), 0o644))
}

func (r *runner) fill(_ context.Context, st *script.Step) (string, string) {
	n, err := script.ParseSize(st.Args[1])
	if err != nil {
		return fail("%v", err)
	}
	buf := make([]byte, n)
	for i := range buf {
		buf[i] = byte('a' + i%26)
	}
	return outcome(os.WriteFile(r.backingPath(st.Args[0]), buf, 0o644))
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

// handleContent returns the open handle st's first operand names and the
// content its second gives (a quoted string or a variable), for read and
// write.
func (r *runner) handleContent(st *script.Step) (*os.File, string, error) {
	f, err := r.handle(st.Args[0])
	if err != nil {
		return nil, "", err
	}
	content, err := r.value(st.Args[1])
	if err != nil {
		return nil, "", err
	}
	return f, content, nil
}

func (r *runner) open(c *connection, _ context.Context, st *script.Step) (string, string) {
	mode := os.O_RDONLY
	for _, f := range st.Args[2:] {
		switch f {
		case "rw":
			mode = os.O_RDWR | mode&os.O_CREATE
		case "create":
			mode |= os.O_CREATE
		default:
			return fail("unknown open flag %s", f)
		}
	}
	f, err := os.OpenFile(filepath.Join(c.mountDir, st.Args[1]), mode, 0o644)
	if err != nil {
		return outcome(err)
	}
	r.mu.Lock()
	old := r.handles[st.Args[0]]
	r.handles[st.Args[0]] = f
	r.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return "ok", ""
}

// read serves read (pread) and mmap-read (a shared mapping).
func (r *runner) read(_ context.Context, st *script.Step) (string, string) {
	f, content, err := r.handleContent(st)
	if err != nil {
		return fail("%v", err)
	}
	var got []byte
	if st.Op == "mmap-read" {
		m, err := unix.Mmap(int(f.Fd()), 0, len(content), unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			return outcome(err)
		}
		got = append([]byte(nil), m...)
		unix.Munmap(m)
	} else {
		buf := make([]byte, len(content))
		n, err := f.ReadAt(buf, 0)
		if err != nil && n != len(buf) {
			return outcome(err)
		}
		got = buf[:n]
	}
	if string(got) != content {
		return fail("read %q", got)
	}
	return "ok", ""
}

func (r *runner) write(_ context.Context, st *script.Step) (string, string) {
	f, content, err := r.handleContent(st)
	if err != nil {
		return fail("%v", err)
	}
	_, err = f.WriteAt([]byte(content), 0)
	return outcome(err)
}

func (r *runner) close(_ context.Context, st *script.Step) (string, string) {
	r.mu.Lock()
	f, ok := r.handles[st.Args[0]]
	delete(r.handles, st.Args[0])
	r.mu.Unlock()
	if !ok {
		return fail("no open handle %s", st.Args[0])
	}
	return outcome(f.Close())
}

func (r *runner) stat(c *connection, _ context.Context, st *script.Step) (string, string) {
	_, err := os.Stat(filepath.Join(c.mountDir, st.Args[0]))
	return outcome(err)
}

func (r *runner) statAsync(c *connection, _ context.Context, st *script.Step) (string, string) {
	ch := make(chan error, 1)
	go func() {
		_, err := os.Stat(filepath.Join(c.mountDir, st.Args[1]))
		ch <- err
	}()
	r.mu.Lock()
	r.async[st.Args[0]] = ch
	r.mu.Unlock()
	return "ok", ""
}

func (r *runner) wait(ctx context.Context, st *script.Step) (string, string) {
	r.mu.Lock()
	ch, ok := r.async[st.Args[0]]
	delete(r.async, st.Args[0])
	r.mu.Unlock()
	if !ok {
		return fail("no background step %s", st.Args[0])
	}
	select {
	case err := <-ch:
		return outcome(err)
	case <-ctx.Done():
		return fail("still blocked: %v", ctx.Err())
	}
}

func (r *runner) answerOpen(c *connection, _ context.Context, st *script.Step) (string, string) {
	v, err := r.value(st.Args[1])
	if err != nil {
		return fail("%v", err)
	}
	id, err := strconv.ParseInt(v, 0, 32)
	if err != nil {
		return fail("backing id %q: %v", v, err)
	}
	return withCtl(c, func(cl *ctl.Client) error { return cl.NextOpenID(st.Args[0], int32(id)) })
}

// umountBacking unmounts the main backing tmpfs, or the backing
// filesystem its operand names.
func (r *runner) umountBacking(_ context.Context, st *script.Step) (string, string) {
	name := ""
	if len(st.Args) > 0 {
		name = st.Args[0]
	}
	err := unix.Unmount(r.backingDir(name), 0)
	if err == nil {
		r.mu.Lock()
		delete(r.backings, name)
		r.mu.Unlock()
	}
	return outcome(err)
}

// backingIno stores or compares the inode number of a backing file.
func (r *runner) backingIno(_ context.Context, st *script.Step) (string, string) {
	var fs unix.Stat_t
	if err := unix.Stat(r.backingPath(st.Args[0]), &fs); err != nil {
		return outcome(err)
	}
	return r.keep(flags(st.Args[1:]), "inode", strconv.FormatUint(fs.Ino, 10))
}

// keep stores got, a number, with as=VAR and compares it with is=REF and
// not=REF, REF being $VAR or a number; what names it in a mismatch
// ("inode 5, want 7").
func (r *runner) keep(f map[string]string, what, got string) (string, string) {
	if ref, ok := f["is"]; ok {
		want, err := r.ref(ref)
		if err != nil {
			return fail("%v", err)
		}
		if got != want {
			return fail("%s %s, want %s", what, got, want)
		}
	}
	if ref, ok := f["not"]; ok {
		other, err := r.ref(ref)
		if err != nil {
			return fail("%v", err)
		}
		if got == other {
			return fail("%s %s, want another", what, got)
		}
	}
	if name, ok := f["as"]; ok {
		r.set(name, got)
	}
	return "ok", ""
}

// ref resolves what is=REF or not=REF compares with: $VAR, or a number as
// written.
func (r *runner) ref(a string) (string, error) {
	if strings.HasPrefix(a, "$") {
		return r.value(a)
	}
	if _, err := strconv.ParseUint(a, 10, 64); err != nil {
		return "", fmt.Errorf("%q is neither $VAR nor a number", a)
	}
	return a, nil
}

func (r *runner) sleep(ctx context.Context, st *script.Step) (string, string) {
	d, _ := time.ParseDuration(st.Args[0])
	select {
	case <-time.After(d):
		return "ok", ""
	case <-ctx.Done():
		return outcome(ctx.Err())
	}
}

func (r *runner) sysrq(_ context.Context, st *script.Step) (string, string) {
	if len(st.Args[0]) != 1 {
		return fail("sysrq takes one key, got %q", st.Args[0])
	}
	return outcome(os.WriteFile("/proc/sysrq-trigger", []byte(st.Args[0]), 0))
}

// mountBacking mounts a fresh tmpfs of the step's size: the main backing
// tmpfs, or with as=NAME backing filesystem NAME.
func (r *runner) mountBacking(_ context.Context, st *script.Step) (string, string) {
	name := flags(st.Args[1:])["as"]
	r.mu.Lock()
	mounted := r.backings[name]
	r.mu.Unlock()
	if mounted {
		return fail("backing filesystem %q is mounted already", name)
	}
	dir := r.backingDir(name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return outcome(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+st.Args[0]); err != nil {
		return outcome(err)
	}
	r.mu.Lock()
	r.backings[name] = true
	r.mu.Unlock()
	return "ok", ""
}

func withCtl(c *connection, fn func(*ctl.Client) error) (string, string) {
	cl, err := ctl.Dial(c.stateDir)
	if err != nil {
		return fail("%v", err)
	}
	defer cl.Close()
	return outcome(fn(cl))
}

func status(c *connection) (ctl.Status, error) {
	cl, err := ctl.Dial(c.stateDir)
	if err != nil {
		return ctl.Status{}, err
	}
	defer cl.Close()
	return cl.Status()
}

// statusCheck checks the daemon's status. "ids" polls for up to two
// seconds: RELEASE is asynchronous, so a close(2) returns before the daemon
// has dropped the handle's backing id.
func (r *runner) statusCheck(c *connection, _ context.Context, step *script.Step) (string, string) {
	a := step.Args
	st, err := status(c)
	if err != nil {
		return fail("status: %v", err)
	}
	switch step.Op {
	case "passthrough":
		if !st.Passthrough {
			return fail("passthrough was not negotiated")
		}
	case "served":
		want, _ := strconv.ParseUint(a[1], 10, 64)
		if got := st.Served[strings.ToUpper(a[0])]; got != want {
			return fail("%s served %d times, want %d", strings.ToUpper(a[0]), got, want)
		}
	case "recovery":
		if st.Recovery.Errno != "" {
			return st.Recovery.Errno, st.Recovery.Detail
		}
	case "ids":
		want, _ := strconv.Atoi(a[0])
		deadline := time.Now().Add(2 * time.Second)
		for len(st.BackingIDs) != want && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
			if st, err = status(c); err != nil {
				return fail("status: %v", err)
			}
		}
		if len(st.BackingIDs) != want {
			return fail("%d backing ids, want %d", len(st.BackingIDs), want)
		}
	}
	return "ok", ""
}

// daemonArgs turns script flags into fusetestd serve flags for a
// generation of connection c, serving the main backing tmpfs.
func (r *runner) daemonArgs(c *connection, fl []string) ([]string, bool, error) {
	args := []string{"serve", "--state", c.stateDir, "--backing", r.backingDir("")}
	noPT := false
	for _, f := range fl {
		k, v, hasV := strings.Cut(f, "=")
		switch {
		case k == "recovery" && hasV:
			args = append(args, "--recovery="+v)
		case k == "id-per-open" && !hasV:
			args = append(args, "--id-per-open")
		case k == "inode-cache" && !hasV:
			args = append(args, "--inode-cache")
			if bit := r.env.Params["inode_cache_bit"]; bit != "" {
				args = append(args, "--inode-cache-bit="+bit)
			}
		case k == "no-passthrough" && !hasV:
			noPT = true
			args = append(args, "--no-passthrough")
		case k == "no-probe" && !hasV:
			args = append(args, "--no-probe")
		case k == "init-fail-nth" && hasV:
			n, err := r.count(v)
			if err != nil {
				return nil, false, fmt.Errorf("init-fail-nth=%v", err)
			}
			args = append(args, "--init-fail-nth="+strconv.Itoa(n))
		default:
			return nil, false, fmt.Errorf("unknown daemon flag %q", f)
		}
	}
	return args, noPT, nil
}

// mount mounts a connection, named by as=NAME (main without), and makes it
// the current one; a name may be mounted again once unmounted.
func (r *runner) mount(ctx context.Context, st *script.Step) (string, string) {
	name, fl := script.MainConn, []string{}
	for _, f := range st.Args {
		if v, ok := strings.CutPrefix(f, "as="); ok {
			name = v
		} else {
			fl = append(fl, f)
		}
	}
	r.mu.Lock()
	old := r.conns[name]
	r.mu.Unlock()
	if old != nil && old.keeper != 0 {
		return fail("connection %s is mounted already", name)
	}
	c := r.newConnection(name)
	_, noPT, err := r.daemonArgs(c, fl)
	if err != nil {
		return fail("%v", err)
	}
	for _, d := range []string{c.mountDir, c.stateDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return outcome(err)
		}
	}
	args := []string{"keeper", "--mount", c.mountDir, "--state", c.stateDir}
	if noPT {
		args = append(args, "--no-passthrough")
	}
	keeper, err := r.env.Spawner.Start(append([]string{r.env.Daemon}, args...))
	if err != nil {
		return outcome(err)
	}
	c.keeper = keeper.PID
	r.mu.Lock()
	r.conns[name], r.cur = c, c
	r.mu.Unlock()
	if _, err := keeper.WaitReady(ctx); errors.Is(err, errExited) {
		c.keeper = 0
		return fail("keeper (pid %d) exited before serving; its error is on the console", keeper.PID)
	} else if err != nil {
		return fail("keeper did not come up: %v", err)
	}
	fc, err := mountedConn(c.mountDir)
	if err != nil {
		return fail("%v", err)
	}
	r.mu.Lock()
	c.fc = &fc
	r.mounted = append(r.mounted, fc)
	r.mu.Unlock()
	return r.startDaemon(ctx, c, fl)
}

// use makes the connection the step names the current one.
func (r *runner) use(_ context.Context, st *script.Step) (string, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.conns[st.Args[0]]
	if !ok {
		return fail("connection %s was never mounted", st.Args[0])
	}
	r.cur = c
	return "ok", ""
}

// startDaemon starts a daemon generation of c and waits until it serves.
func (r *runner) startDaemon(ctx context.Context, c *connection, fl []string) (string, string) {
	if c.daemon != 0 {
		return fail("a daemon generation is still running (crash it first)")
	}
	args, _, err := r.daemonArgs(c, fl)
	if err != nil {
		return fail("%v", err)
	}
	daemon, err := r.env.Spawner.Start(append([]string{r.env.Daemon}, args...))
	if err != nil {
		return outcome(err)
	}
	c.daemon = daemon.PID
	c.gen++
	// A daemon that exits before it serves (a bad flag, an ioctl of its
	// start-up failing on a broken kernel) fails the step at once, not
	// at the scenario's timeout.
	line, err := daemon.WaitReady(ctx)
	switch {
	case errors.Is(err, errExited):
		c.daemon = 0
		return fail("daemon generation %d (pid %d) exited before serving; its error is on the console", c.gen, daemon.PID)
	case err != nil:
		return fail("waiting for generation %d to serve: %v", c.gen, err)
	case !strings.HasPrefix(line, "serving "):
		return fail("daemon generation %d printed %q, not its serving line", c.gen, line)
	}
	return "ok", ""
}

// crash kills c's daemon generation.
func (c *connection) crash() error {
	if c.daemon == 0 {
		return errors.New("no daemon running")
	}
	err := kill(c.daemon, 5*time.Second)
	c.daemon = 0
	return err
}

// umount unmounts c through its keeper and waits until the keeper and
// any daemon generation are gone.
func (r *runner) umount(c *connection) error {
	r.closeDevFD(c)
	if c.keeper == 0 {
		return fmt.Errorf("connection %s is not mounted", c.name)
	}
	err := ctl.Umount(c.stateDir)
	if werr := waitDead(c.keeper, 5*time.Second); werr != nil {
		kill(c.keeper, time.Second)
		err = errors.Join(err, werr)
	}
	c.keeper = 0
	if c.daemon != 0 {
		kill(c.daemon, 5*time.Second)
		c.daemon = 0
	}
	return err
}

// devFD returns (and caches) a dup of c's /dev/fuse fd.
func (r *runner) devFD(c *connection) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.devfd >= 0 {
		return c.devfd, nil
	}
	fd, err := ctl.DevFuseFD(c.stateDir)
	if err != nil {
		return -1, err
	}
	c.devfd = fd
	return fd, nil
}

func (r *runner) closeDevFD(c *connection) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.devfd >= 0 {
		unix.Close(c.devfd)
		c.devfd = -1
	}
}

// freeSpace stores or compares the free bytes of a backing filesystem.
func (r *runner) freeSpace(_ context.Context, st *script.Step) (string, string) {
	f := flags(st.Args)
	r.awaitReplies(5 * time.Second)
	var fs unix.Statfs_t
	if err := unix.Statfs(r.backingDir(f["on"]), &fs); err != nil {
		return outcome(err)
	}
	return r.keep(f, "free bytes", strconv.FormatUint(fs.Bfree*uint64(fs.Bsize), 10))
}

// kernelMemory stores or checks the kernel's unreclaimable slab memory.
// A check polls for two seconds before it fails: what the kernel frees
// after an RCU grace period (kfree_rcu) is still counted for a while.
func (r *runner) kernelMemory(_ context.Context, st *script.Step) (string, string) {
	k, v, _ := strings.Cut(st.Args[0], "=")
	if k == "as" {
		n, err := slabUnreclaimable()
		if err != nil {
			return fail("%v", err)
		}
		r.set(v, strconv.FormatUint(n, 10))
		return "ok", ""
	}
	ref, size, _ := strings.Cut(v, "+")
	base, err := r.value(ref)
	if err != nil {
		return fail("%v", err)
	}
	b, err := strconv.ParseUint(base, 10, 64)
	if err != nil {
		return fail("%s is %q, not a byte count", ref, base)
	}
	grow, err := script.ParseSize(size)
	if err != nil {
		return fail("%v", err)
	}
	limit := b + uint64(grow)
	if slack, err := strconv.ParseUint(r.env.Params["slab_slack"], 10, 64); err == nil {
		limit += slack // the config's (plan.Boot.SlabSlack)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		n, err := slabUnreclaimable()
		if err != nil {
			return fail("%v", err)
		}
		if n <= limit {
			return "ok", fmt.Sprintf("grew %d bytes", int64(n)-int64(b))
		}
		if time.Now().After(deadline) {
			return fail("unreclaimable slab %d bytes: grew %d since %s, more than %s", n, n-b, ref, size)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// slabUnreclaimable reads SUnreclaim from /proc/meminfo, in bytes.
func slabUnreclaimable() (uint64, error) {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "SUnreclaim:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/meminfo: %q: %v", line, err)
			}
			return kb * 1024, nil
		}
	}
	return 0, errors.New("/proc/meminfo has no SUnreclaim line (a kernel without SLUB?)")
}

// cleanup leaves the machine as it found it: a dead daemon cannot answer
// the FLUSH a close sends, so every connection is aborted first.
func (r *runner) cleanup() {
	conns := r.connections()
	for _, c := range conns {
		if c.keeper != 0 {
			r.abortConn(c)
		}
	}
	r.mu.Lock()
	for h, f := range r.handles {
		f.Close()
		delete(r.handles, h)
	}
	r.mu.Unlock()
	for _, c := range conns {
		r.closeDevFD(c)
		if c.keeper != 0 && r.umount(c) != nil {
			unix.Unmount(c.mountDir, unix.MNT_DETACH)
		}
		os.RemoveAll(c.stateDir)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for name := range r.backings {
		unix.Unmount(r.backingDir(name), unix.MNT_DETACH)
	}
}

// awaitReplies waits, at most limit, until every running daemon has
// answered every request of its connection (fusectl's "waiting" count is
// 0). A close() returns before the daemon has handled its RELEASE, which is
// sent in the background, and the daemon drops its backing file there: a
// free-space check right after a close must not race with that. Without a
// running daemon nothing would answer, so nothing is awaited.
func (r *runner) awaitReplies(limit time.Duration) {
	deadline := time.Now().Add(limit)
	for _, c := range r.connections() {
		if c.keeper == 0 || c.daemon == 0 {
			continue
		}
		waiting, err := r.connFile(c, "waiting")
		if err != nil {
			continue
		}
		for ; time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			data, err := os.ReadFile(waiting)
			if err != nil || strings.TrimSpace(string(data)) == "0" {
				break
			}
		}
	}
}

// abortConn aborts connection c through fusectl.
func (r *runner) abortConn(c *connection) error {
	abort, err := r.connFile(c, "abort")
	if err != nil {
		return err
	}
	return os.WriteFile(abort, []byte("1"), 0o200)
}

// connFile is the path of the fusectl file name of connection c, which
// must still exist.
func (r *runner) connFile(c *connection, name string) (string, error) {
	r.mu.Lock()
	fc := c.fc
	r.mu.Unlock()
	if fc == nil {
		return "", fmt.Errorf("connection %s has no FUSE connection", c.name)
	}
	alive, err := fc.alive()
	if err != nil {
		return "", err
	}
	if !alive {
		return "", fmt.Errorf("FUSE connection %d has ended", fc.id)
	}
	return filepath.Join(fc.dir(), name), nil
}

// countConnections checks how many of the connections this scenario
// mounted still exist, whatever their names. Counting its own only keeps
// the step exact on a machine where other FUSE filesystems come and go.
func (r *runner) countConnections(_ context.Context, st *script.Step) (string, string) {
	want, _ := strconv.Atoi(st.Args[0])
	r.mu.Lock()
	mounted := slices.Clone(r.mounted)
	r.mu.Unlock()
	n := 0
	for _, c := range mounted {
		alive, err := c.alive()
		if err != nil {
			return fail("%v", err)
		}
		if alive {
			n++
		}
	}
	if n != want {
		return fail("%d of the scenario's %d connections exist, want %d", n, len(mounted), want)
	}
	return "ok", ""
}

// fuseConn is a FUSE connection: its fusectl directory name and that
// directory's inode number. fusectl gives every new directory a fresh
// inode number, so the pair tells a connection apart from a later one
// given the same (recycled) device number.
type fuseConn struct {
	id  uint32
	ino uint64
}

// mountedConn returns the connection of the FUSE filesystem at mnt.
func mountedConn(mnt string) (fuseConn, error) {
	if err := fuseabi.EnsureFusectl(); err != nil {
		return fuseConn{}, err
	}
	id, err := fuseabi.MountConn(mnt)
	if err != nil {
		return fuseConn{}, err
	}
	c := fuseConn{id: id}
	var st unix.Stat_t
	if err := unix.Stat(c.dir(), &st); err != nil {
		return fuseConn{}, fmt.Errorf("FUSE connection %d: %w", id, err)
	}
	c.ino = st.Ino
	return c, nil
}

func (c fuseConn) dir() string {
	return filepath.Join(fuseabi.FusectlDir, strconv.FormatUint(uint64(c.id), 10))
}

// alive reports whether c still exists.
func (c fuseConn) alive() (bool, error) {
	var st unix.Stat_t
	err := unix.Stat(c.dir(), &st)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("FUSE connection %d: %w", c.id, err)
	}
	return st.Ino == c.ino, nil
}
