package guestshell

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"fusevm/events"
	"fusevm/fuseabi"
	"fusevm/fuseabi/fuseabitest"
	"fusevm/scenarios"
	"fusevm/scenarios/interp/interptest"
	"fusevm/scenarios/script"
)

// TestMain runs the tests, or the process spawner of TestOnHost.
func TestMain(m *testing.M) { interptest.Main(m) }

// console is the shell's terminal: commands are written to a pipe, and
// what the shell prints is read until the next prompt.
type console struct {
	t    *testing.T
	in   *io.PipeWriter
	mu   sync.Mutex
	out  strings.Builder
	done chan error
}

func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Write(p)
}

// start runs the shell for plan in env, on a console.
func start(t *testing.T, plan events.Plan, env Env) *console {
	t.Helper()
	r, w := io.Pipe()
	c := &console{t: t, in: w, done: make(chan error, 1)}
	env.In, env.Out = r, c
	go func() { c.done <- Run(context.Background(), plan, env) }()
	c.wait("> ")
	return c
}

// wait returns what the shell printed until it shows prompt, and forgets
// it.
func (c *console) wait(prompt string) string {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		s := c.out.String()
		if strings.HasSuffix(s, prompt) {
			c.out.Reset()
			c.mu.Unlock()
			return s
		}
		c.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t.Fatalf("no prompt %q; the shell printed:\n%s", prompt, c.out.String())
	return ""
}

// do types line and returns the output up to the next prompt.
func (c *console) do(line string) string {
	c.t.Helper()
	return c.doUntil(line, "fusevm> ")
}

func (c *console) doUntil(line, prompt string) string {
	c.t.Helper()
	fmt.Fprintln(c.in, line)
	return c.wait(prompt)
}

// exit leaves the shell and checks that Run returns.
func (c *console) exit() {
	c.t.Helper()
	fmt.Fprintln(c.in, "exit")
	select {
	case err := <-c.done:
		if err != nil {
			c.t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		c.t.Fatal("the shell did not end after exit")
	}
}

func testPlan(t *testing.T, names ...string) events.Plan {
	t.Helper()
	ss, err := scenarios.Load(names)
	if err != nil {
		t.Fatal(err)
	}
	plan := events.Plan{Claims: []string{"close_all_ioctl"}, Params: map[string]string{"inode_cache_bit": "9"}}
	for _, s := range ss {
		plan.Scenarios = append(plan.Scenarios, events.ScenarioSpec{Name: s.Name, Script: s.Text})
	}
	return plan
}

func TestRequested(t *testing.T) {
	for cmdline, want := range map[string]bool{
		"console=ttyS0 panic=-1 fusevm.shell\n": true,
		"fusevm.shell nokaslr":                  true,
		"console=ttyS0 fusevm.shellx":           false,
		"console=ttyS0 panic=-1 oops=panic\n":   false,
		"":                                      false,
	} {
		if got := requested(cmdline); got != want {
			t.Errorf("requested(%q) = %v", cmdline, got)
		}
	}
}

// TestCommands drives the commands that need no FUSE through a pipe.
func TestCommands(t *testing.T) {
	root, scen := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(root, "note"), []byte("hello"), 0o644)
	c := start(t, testPlan(t, "smoke-passthrough", "stale-id"), Env{Root: root, ScenarioDir: scen})
	for _, tc := range []struct{ cmd, want string }{
		{"help", "step LINE"},
		{"scenarios", "  smoke-passthrough\n  stale-id\n"},
		{"show stale-id", "needs: close_all_ioctl"},
		{"show " + filepath.Join(scen, "smoke-passthrough.fvm"), "mount"},
		{"claims", "claims: close_all_ioctl\nparam inode_cache_bit = 9\n"},
		{"ls", "note"},
		{"ls " + scen, "stale-id.fvm"},
		{"cat " + filepath.Join(root, "note"), "hello\n"},
		{"cat " + filepath.Join(root, "n*"), "hello\n"},
		{"write " + filepath.Join(root, "note") + " two words", ""},
		{"cat " + filepath.Join(root, "note"), "two words\n"},
		{"cat /nonexistent", "error: open /nonexistent: no such file or directory"},
		{"frobnicate", `error: unknown command "frobnicate" (type help)`},
		{"run no-such", `error: no scenario "no-such" in the plan`},
		{"run", "error: name a scenario"},
		{"step", "error: step LINE"},
		{"step open h1", "error: step:1: open: want 2 operand(s), got 1"},
		{"step repeat 3", "error: step:1: repeat block is never closed with end"},
		{"step nosuchop", `unknown step "nosuchop"`},
		{"end", "error: no step session"},
		{"", ""},
	} {
		got := c.do(tc.cmd)
		if !strings.Contains(got, tc.want) {
			t.Errorf("%q printed %q, want %q", tc.cmd, got, tc.want)
		}
	}
	c.exit()
}

// TestEndOfInput ends the shell when its console closes.
func TestEndOfInput(t *testing.T) {
	c := start(t, testPlan(t, "smoke-passthrough"), Env{Root: t.TempDir()})
	c.in.Close()
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the shell did not end at the end of its input")
	}
}

func TestParseStep(t *testing.T) {
	scope := script.NewScope()
	st, err := parseStep(scope, `read h1 "a b" => EIO`, 4)
	if err != nil || st.Op != "read" || st.Line != 4 || st.Expect.Resolve(nil) != "EIO" {
		t.Fatalf("%+v, %v", st, err)
	}
	st, err = parseStep(scope, "crash", 1)
	if err != nil || st.Expect.Resolve(nil) != "any" {
		t.Fatalf("a step without => accepts any outcome: %+v, %v", st, err)
	}
	// A step may name what the session's earlier steps declared.
	if _, err := parseStep(scope, "use other", 5); err == nil {
		t.Fatal("use of a connection never mounted accepted")
	}
	if _, err := parseStep(scope, "mount as=other", 6); err != nil {
		t.Fatal(err)
	}
	if st, err := parseStep(scope, "use other", 7); err != nil || st.Args[0] != "other" {
		t.Fatalf("use of the connection a step mounted: %+v, %v", st, err)
	}
}

// TestOnHost runs scenarios and a step session on the host kernel through
// the shell, as in a guest: it needs root, /dev/fuse and passthrough.
func TestOnHost(t *testing.T) {
	if testing.Short() {
		t.Skip("builds fusetestd and mounts FUSE")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: scenarios mount tmpfs and FUSE")
	}
	fuseabitest.RequireDevFuse(t)
	if err := interptest.KeepFusectlMounted(t); err != nil {
		t.Skipf("fusectl: %v", err)
	}
	daemon := interptest.BuildDaemon(t)
	spawner := interptest.StartSpawner(t)
	root := t.TempDir()
	t.Cleanup(func() { interptest.CheckUnmounted(t, root) })
	// The host kernel is unpatched: no claims.
	plan := testPlan(t, "smoke-passthrough")
	plan.Claims = nil
	c := start(t, plan, Env{Root: root, Daemon: daemon, Spawner: spawner, StepTimeout: 30 * time.Second})
	out := c.do("run smoke-passthrough")
	if strings.Contains(out, "passthrough => error") {
		c.exit()
		t.Skipf("the host kernel does not negotiate FUSE passthrough:\n%s", out)
	}
	if !strings.Contains(out, "smoke-passthrough: PASS") || !strings.Contains(out, "line ") {
		t.Fatalf("run smoke-passthrough:\n%s", out)
	}

	// A step session keeps the daemon, the mount and the handles between
	// steps; a step without => shows its errno and the session goes on.
	for _, tc := range []struct{ cmd, want string }{
		{"step backing 16M", "backing 16M => ok"},
		{`step file a.txt "before the crash"`, "=> ok"},
		{"step mount recovery=none", "mount recovery=none => ok"},
		{"step open h1 a.txt", "open h1 a.txt => ok"},
		{"ls " + filepath.Join(root, "mnt"), "a.txt"},
		{"step crash", "crash => ok"},
		{"step restart recovery=none", "=> ok"},
		{"step open h2 a.txt", "open h2 a.txt => EIO"}, // the bug, on an unpatched kernel
		{`step read h1 "before the crash"`, "=> ok"},
	} {
		got := c.doUntil(tc.cmd, "fusevm[step]> ")
		if !strings.Contains(got, tc.want) {
			t.Fatalf("%q printed %q, want %q", tc.cmd, got, tc.want)
		}
	}
	// A step that asks for an outcome it does not get ends the session.
	if got := c.do("step open h3 a.txt => ok"); !strings.Contains(got, "got EIO, want ok") || !strings.Contains(got, "step session ended: FAIL") {
		t.Fatalf("a failing step: %q", got)
	}
	if m, _ := fuseabi.IsMountpoint(filepath.Join(root, "mnt")); m {
		t.Error("the session's mount outlived it")
	}
	// A step may name the connections earlier steps mounted; end cleans
	// up a session, every connection of it.
	for _, tc := range []struct{ cmd, want string }{
		{"step backing 1M", "=> ok"},
		{"step mount", "mount => ok"},
		{"step mount as=other", "mount as=other => ok"},
		{"step use main", "use main => ok"},
	} {
		if got := c.doUntil(tc.cmd, "fusevm[step]> "); !strings.Contains(got, tc.want) {
			t.Fatalf("%q printed %q, want %q", tc.cmd, got, tc.want)
		}
	}
	if got := c.do("end"); !strings.Contains(got, "step session ended") {
		t.Fatalf("end: %q", got)
	}
	if m, _ := fuseabi.IsMountpoint(filepath.Join(root, "mnt-other")); m {
		t.Error("the session's second connection outlived it")
	}

	// steps stops after each step: Enter runs the next, a command runs in
	// between, c runs the rest.
	const paused = "fusevm[paused: Enter next, c continue, q abort]> "
	got := c.doUntil("steps smoke-passthrough", paused)
	if !strings.Contains(got, "line ") {
		t.Fatalf("steps: %q", got)
	}
	c.doUntil("", paused)
	if got := c.doUntil("ls "+root, paused); !strings.Contains(got, "backing") {
		t.Errorf("ls while paused: %q", got)
	}
	if got := c.doUntil("run smoke-passthrough", paused); !strings.Contains(got, "a scenario is paused") {
		t.Errorf("run while paused: %q", got)
	}
	if got := c.do("c"); !strings.Contains(got, "smoke-passthrough: PASS") {
		t.Errorf("continue: %q", got)
	}
	// q aborts.
	c.doUntil("steps smoke-passthrough", paused)
	if got := c.do("q"); !strings.Contains(got, "smoke-passthrough: aborted") {
		t.Errorf("abort: %q", got)
	}
	c.exit()
}
