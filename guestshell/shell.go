// Package guestshell is the debugging shell of a fusevm guest: `fusevm
// shell` boots a kernel variant with the kernel argument Arg, and the
// guest agent, once it has the plan (the scenarios with the kernel's
// claims and parameters), runs Main instead of the scenarios. The shell
// reads commands on the serial console: it lists, shows and runs the
// plan's scenarios (whole, or stopping after each step), runs scenario
// steps one at a time in a session that keeps the daemon, mounts and
// handles between them, and looks around the guest (ls, cat, dmesg,
// write). There is no other shell in the guest image.
//
// It is guest code: it imports only the shared leaves (the event schema,
// the scenario language) and the scenario interpreter.
package guestshell

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"fusevm/events"
	"fusevm/scenarios/interp"
	"fusevm/scenarios/script"
)

// Arg is the kernel argument that asks the agent for the shell.
const Arg = "fusevm.shell"

// ScenarioDir is where Main writes the plan's scripts, one NAME.fvm each,
// so that ls and cat show them and run takes their paths.
const ScenarioDir = "/scenarios"

// Requested reports whether the kernel command line asks for the shell:
// /proc/cmdline holds Arg.
func Requested() bool {
	data, err := os.ReadFile("/proc/cmdline")
	return err == nil && requested(string(data))
}

func requested(cmdline string) bool {
	for _, w := range strings.Fields(cmdline) {
		if w == Arg {
			return true
		}
	}
	return false
}

// Main runs the shell on the guest's console for plan, with the agent's
// process spawner, scenario root and daemon binary, and returns when the
// user leaves it (the agent then powers the VM off).
func Main(plan events.Plan, spawner *interp.Spawner, root, daemon string) error {
	con, err := os.OpenFile("/dev/console", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("shell: %w", err)
	}
	defer con.Close()
	os.MkdirAll(ScenarioDir, 0o755)
	return Run(context.Background(), plan, Env{
		In: con, Out: con, Root: root, Daemon: daemon, Spawner: spawner,
		Kmsg: kmsg, ScenarioDir: ScenarioDir,
	})
}

// Env is what the shell runs against.
type Env struct {
	In  io.Reader
	Out io.Writer
	// Root, Daemon and Spawner are the interpreter's (interp.Env).
	Root    string
	Daemon  string
	Spawner *interp.Spawner
	// Kmsg, if set, writes a line to the kernel log: scenario boundaries
	// are marked there as the agent marks them.
	Kmsg func(string)
	// ScenarioDir, if set, receives the plan's scripts as NAME.fvm.
	ScenarioDir string
	// StepTimeout bounds one step of a step session (default 60 s): a step
	// blocked longer ends the session, whose connection is aborted.
	StepTimeout time.Duration
}

// shell is one run of the command loop.
type shell struct {
	env     Env
	plan    events.Plan
	claims  map[string]bool
	out     io.Writer
	lines   <-chan string
	session *session // the step session, nil when none
	exiting bool
}

// Run runs the command loop on env.In and env.Out until "exit" or the end
// of the input.
func Run(ctx context.Context, plan events.Plan, env Env) error {
	if env.StepTimeout <= 0 {
		env.StepTimeout = 60 * time.Second
	}
	sh := &shell{env: env, plan: plan, claims: map[string]bool{}, out: env.Out}
	for _, c := range plan.Claims {
		sh.claims[c] = true
	}
	if env.ScenarioDir != "" {
		for _, s := range plan.Scenarios {
			os.WriteFile(filepath.Join(env.ScenarioDir, s.Name+".fvm"), []byte(s.Script), 0o644)
		}
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(env.In)
		sc.Buffer(make([]byte, 4096), 1<<20)
		for sc.Scan() {
			lines <- strings.TrimRight(sc.Text(), "\r")
		}
	}()
	sh.lines = lines
	var uts unix.Utsname
	unix.Uname(&uts)
	fmt.Fprintf(sh.out, "\nfusevm shell on Linux %s: %d scenarios, claims: %s\n", unix.ByteSliceToString(uts.Release[:]), len(plan.Scenarios), orNone(plan.Claims))
	fmt.Fprintf(sh.out, "type help for the commands, exit to power off\n")
	for !sh.exiting {
		sh.prompt()
		line, ok := <-lines
		if !ok {
			break
		}
		sh.command(ctx, line)
	}
	sh.endSession()
	return nil
}

func (sh *shell) prompt() {
	if sh.session != nil {
		fmt.Fprint(sh.out, "fusevm[step]> ")
		return
	}
	fmt.Fprint(sh.out, "fusevm> ")
}

const help = `commands:
  scenarios            the plan's scenarios (their scripts are in %s)
  show NAME            print a scenario's script
  run NAME|FILE.fvm    run a scenario, printing each step and the verdict
  steps NAME|FILE.fvm  run a scenario, stopping after each step: Enter runs
                       the next, c runs the rest, q aborts; other commands
                       work in between
  step LINE            run one scenario step (e.g. "step backing 16M",
                       "step open h1 a.txt => EIO"); the daemon, mounts,
                       handles and variables stay between steps until "end"
  end                  end the step session (unmount, stop the daemon)
  claims               the kernel's claims and parameters
  ls [PATH]            list a directory (default: the scenario root %s)
  cat FILE             print a file (e.g. /sys/fs/fuse/connections/*/waiting)
  write FILE TEXT      write TEXT to FILE (e.g. /proc/sys/kernel/printk)
  dmesg [N]            the kernel log (its last N lines)
  exit                 power the VM off
`

// command runs one command line.
func (sh *shell) command(ctx context.Context, line string) {
	words := strings.Fields(line)
	if len(words) == 0 {
		return
	}
	arg := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), words[0]))
	switch words[0] {
	case "help", "?":
		fmt.Fprintf(sh.out, help, orNone([]string{sh.env.ScenarioDir}), sh.env.Root)
	case "exit", "quit", "poweroff":
		sh.exiting = true
	case "scenarios", "list":
		for _, s := range sh.plan.Scenarios {
			fmt.Fprintf(sh.out, "  %s\n", s.Name)
		}
	case "show":
		text, err := sh.text(arg)
		if err != nil {
			sh.errorf("%v", err)
			return
		}
		fmt.Fprint(sh.out, text)
		if !strings.HasSuffix(text, "\n") {
			fmt.Fprintln(sh.out)
		}
	case "run", "steps":
		if sh.session != nil {
			sh.errorf("a step session is open: end it first")
			return
		}
		s, err := sh.script(arg)
		if err != nil {
			sh.errorf("%v", err)
			return
		}
		sh.run(ctx, s, words[0] == "steps")
	case "step":
		sh.step(ctx, arg)
	case "end":
		if sh.session == nil {
			sh.errorf("no step session")
			return
		}
		sh.endSession()
	case "claims":
		fmt.Fprintf(sh.out, "claims: %s\n", orNone(sh.plan.Claims))
		var keys []string
		for k := range sh.plan.Params {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(sh.out, "param %s = %s\n", k, sh.plan.Params[k])
		}
	case "ls":
		if arg == "" {
			sh.ls(sh.env.Root)
			return
		}
		for _, p := range sh.glob(arg) {
			sh.ls(p)
		}
	case "cat":
		if arg == "" {
			sh.errorf("cat FILE")
			return
		}
		for _, p := range sh.glob(arg) {
			sh.cat(p)
		}
	case "write":
		file, text, _ := strings.Cut(arg, " ")
		if file == "" {
			sh.errorf("write FILE TEXT")
			return
		}
		if err := os.WriteFile(file, []byte(text+"\n"), 0); err != nil {
			sh.errorf("%v", err)
		}
	case "dmesg":
		sh.dmesg(arg)
	default:
		sh.errorf("unknown command %q (type help)", words[0])
	}
}

func (sh *shell) errorf(format string, a ...any) {
	fmt.Fprintf(sh.out, "error: "+format+"\n", a...)
}

// text is the script of a plan's scenario (by name) or of a file.
func (sh *shell) text(name string) (string, error) {
	if name == "" {
		return "", errors.New("name a scenario (see scenarios) or a .fvm file")
	}
	for _, s := range sh.plan.Scenarios {
		if s.Name == name {
			return s.Script, nil
		}
	}
	data, err := os.ReadFile(name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && !strings.Contains(name, "/") {
			return "", fmt.Errorf("no scenario %q in the plan (see scenarios)", name)
		}
		return "", err
	}
	return string(data), nil
}

// script parses the scenario name names.
func (sh *shell) script(name string) (*script.Script, error) {
	text, err := sh.text(name)
	if err != nil {
		return nil, err
	}
	n := strings.TrimSuffix(filepath.Base(name), ".fvm")
	return script.Parse(n, name, text)
}

// run runs s, printing each step; with pause it stops after each step
// for the user.
func (sh *shell) run(ctx context.Context, s *script.Script, pause bool) {
	if pause {
		c := *s
		c.Timeout = 100 * 365 * 24 * time.Hour // the user sets the pace
		s = &c
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	aborted := false
	cancel := func() { aborted = true; stop() }
	// Each step's report waits for the command loop to let it go on: at
	// once, or, paused, once the user says so.
	type stepped struct {
		ev     events.Event
		resume chan struct{}
	}
	steps := make(chan stepped)
	emit := func(ev events.Event) {
		st := stepped{ev, make(chan struct{})}
		select {
		case steps <- st:
		case <-ctx.Done():
			return
		}
		select {
		case <-st.resume:
		case <-ctx.Done():
		}
	}
	done := make(chan interp.Result, 1)
	sh.mark("fusevm: scenario " + s.Name + " start")
	go func() {
		done <- interp.Run(ctx, s, interp.Env{Claims: sh.claims, Params: sh.plan.Params, Root: sh.env.Root, Daemon: sh.env.Daemon, Spawner: sh.env.Spawner, Emit: emit})
	}()
	for {
		select {
		case st := <-steps:
			fmt.Fprintf(sh.out, "  line %d: %s\n", st.ev.Line, st.ev.Detail)
			if pause {
				pause = sh.paused(ctx, cancel)
			}
			close(st.resume)
		case res := <-done:
			sh.mark("fusevm: scenario " + s.Name + " end")
			if aborted {
				fmt.Fprintf(sh.out, "%s: aborted (its connection aborted, everything unmounted)\n", s.Name)
				return
			}
			fmt.Fprintf(sh.out, "%s: %s", s.Name, res.Verdict)
			if res.Detail != "" {
				fmt.Fprintf(sh.out, ": %s", res.Detail)
			}
			fmt.Fprintln(sh.out)
			return
		}
	}
}

// paused reads commands after a step of "steps": Enter (or n) goes on to
// the next step, c runs the rest without stopping, q aborts the scenario
// (cancel); any other command runs. It returns whether to stop after the
// next step.
func (sh *shell) paused(ctx context.Context, cancel func()) bool {
	for {
		fmt.Fprint(sh.out, "fusevm[paused: Enter next, c continue, q abort]> ")
		line, ok := <-sh.lines
		if !ok {
			sh.exiting = true
			cancel()
			return false
		}
		switch strings.TrimSpace(line) {
		case "", "n", "next":
			return true
		case "c", "cont", "continue":
			return false
		case "q", "quit", "abort":
			cancel()
			return false
		case "exit", "poweroff":
			sh.exiting = true
			cancel()
			return false
		}
		if w := strings.Fields(line)[0]; w == "run" || w == "steps" || w == "step" {
			sh.errorf("a scenario is paused: finish it (c) or abort it (q) first")
			continue
		}
		sh.command(ctx, line)
	}
}

// glob expands a pattern ("/sys/fs/fuse/connections/*/waiting"); a
// pattern that matches nothing stays as it is, for the error to name it.
func (sh *shell) glob(pattern string) []string {
	if m, err := filepath.Glob(pattern); err == nil && len(m) > 0 {
		return m
	}
	return []string{pattern}
}

// ls lists a directory.
func (sh *shell) ls(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if st, serr := os.Lstat(dir); serr == nil && !st.IsDir() {
			fmt.Fprintf(sh.out, "%s %10d %s\n", st.Mode(), st.Size(), dir)
			return
		}
		sh.errorf("%v", err)
		return
	}
	for _, e := range ents {
		info, err := e.Info()
		if err != nil {
			fmt.Fprintf(sh.out, "?          %10s %s\n", "?", e.Name())
			continue
		}
		name := e.Name()
		if info.Mode()&os.ModeSymlink != 0 {
			if t, err := os.Readlink(filepath.Join(dir, name)); err == nil {
				name += " -> " + t
			}
		}
		fmt.Fprintf(sh.out, "%s %10d %s\n", info.Mode(), info.Size(), name)
	}
}

// cat prints a file, at most 1 MiB of it.
func (sh *shell) cat(file string) {
	f, err := os.Open(file)
	if err != nil {
		sh.errorf("%v", err)
		return
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 1<<20))
	sh.out.Write(data)
	if len(data) > 0 && data[len(data)-1] != '\n' {
		fmt.Fprintln(sh.out)
	}
	if err != nil {
		sh.errorf("%v", err)
	}
}

// dmesg prints the kernel log buffer (its last n lines when arg is n).
func (sh *shell) dmesg(arg string) {
	n := 0
	if arg != "" {
		if _, err := fmt.Sscan(arg, &n); err != nil || n < 1 {
			sh.errorf("dmesg [N]: N is a number of lines")
			return
		}
	}
	size, err := unix.Klogctl(unix.SYSLOG_ACTION_SIZE_BUFFER, nil)
	if err != nil || size <= 0 {
		sh.errorf("kernel log: %v", err)
		return
	}
	buf := make([]byte, size)
	m, err := unix.Klogctl(unix.SYSLOG_ACTION_READ_ALL, buf)
	if err != nil {
		sh.errorf("kernel log: %v", err)
		return
	}
	lines := strings.Split(strings.TrimRight(string(buf[:m]), "\n"), "\n")
	if n > 0 && len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for _, l := range lines {
		// Strip the "<level>" prefix syslog(2) gives.
		if strings.HasPrefix(l, "<") {
			if i := strings.IndexByte(l, '>'); i > 0 && i < 5 {
				l = l[i+1:]
			}
		}
		fmt.Fprintln(sh.out, l)
	}
}

func (sh *shell) mark(line string) {
	if sh.env.Kmsg != nil {
		sh.env.Kmsg(line)
	}
}

func orNone(list []string) string {
	var out []string
	for _, s := range list {
		if s != "" {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// kmsg writes a line to the kernel log, at debug level: it is in dmesg
// but not printed on the console, the user's terminal.
func kmsg(line string) {
	f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		return
	}
	f.WriteString("<7>" + line + "\n")
	f.Close()
}
