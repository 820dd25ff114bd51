// Package execute runs a plan of scenarios in VMs and judges each
// scenario: the guest's own verdict, overridden by a kernel report seen on
// the console during that scenario (CRASH), a timeout (HANG) or a QEMU
// failure (INFRA). When a scenario ends the VM or hangs, the scenarios after
// it run in a fresh VM, so one fatal scenario costs one cell; so do they
// after a scenario during which the kernel reported anything. It writes the
// console of each VM and events.jsonl for the run.
package execute

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"fusevm/events"
	"fusevm/report"
	"fusevm/scenarios"
	"fusevm/verdict"
	"fusevm/vmtest"
	"fusevm/vmtest/splat"
)

// Job is the work of one kernel variant.
type Job struct {
	Kernel    string
	Initramfs string
	// Vmlinux, if set, is the unstripped kernel; CRASH results then carry
	// their stack decoded to file:line.
	Vmlinux   string
	Scenarios []scenarios.Scenario
	// Claims are passed to the guest for conditional outcomes.
	Claims []string
	// Params are per-kernel settings for the scripts (events.Plan.Params).
	Params map[string]string
	// OutDir receives the console logs and events.jsonl.
	OutDir string
	// Console, if set, streams the serial console (for -v).
	Console io.Writer
	// VMOptions are extra vmtest options (accelerator, timeouts, CPUs...).
	VMOptions []vmtest.Option
	// Stop, if set, is asked at the end of each scenario with the guest's
	// verdict; true stops the VM there, and the scenarios after it do not
	// run (SKIP). Mutation analysis stops at the first unexpected verdict:
	// one decides the mutant. It must give the same answer when asked
	// again.
	Stop func(scenario string, v verdict.Verdict) bool
}

// BootScenario names the result of kernel reports printed outside any
// scenario (at boot, between scenarios or at power-off).
const BootScenario = "(boot)"

// Outcome is the judged run: one Result per scenario (Kernel, Variant and
// the expectation are left for the caller), a BootScenario result per VM
// whose console had a kernel report outside any scenario, each VM's own
// result in boot order, and the kernel's features as the guest probed
// them.
type Outcome struct {
	Results []report.Result
	Boot    []report.Result
	VMs     []*vmtest.Result
	// Features are the first Features event's: every VM of the job boots
	// the same kernel, so the first VM that reported them is enough (a
	// fresh VM reports again; that report is not kept). Nil when no VM
	// got as far as reporting them.
	Features []events.Feature
}

// vmRun boots one VM for the pending scenarios and returns its result and
// the events it sent. Run uses bootVM; tests use a fake.
type vmRun func(ctx context.Context, job Job, pending []scenarios.Scenario, consoleLog string, evLog *events.Writer) (*vmtest.Result, []events.Event, error)

// Run runs every scenario of the job. A VM that ends during a scenario
// (panic, oops, lockup, QEMU gone), in which a scenario hangs, or whose
// kernel reported something during a scenario is not trusted further: the
// scenarios after that one run in a fresh VM. A VM that ends before its
// first scenario starts ends the run: the scenarios left get its verdict,
// with the end of its console in the reason. Every VM consumes at least
// one scenario, so there are at most as many VMs as scenarios.
func Run(ctx context.Context, job Job) (*Outcome, error) {
	return run(ctx, job, bootVM)
}

func run(ctx context.Context, job Job, boot vmRun) (*Outcome, error) {
	if err := os.MkdirAll(job.OutDir, 0o755); err != nil {
		return nil, err
	}
	evFile, err := os.Create(filepath.Join(job.OutDir, "events.jsonl"))
	if err != nil {
		return nil, err
	}
	defer evFile.Close()
	evLog := events.NewWriter(evFile)
	out := &Outcome{}
	pending := job.Scenarios
	for n := 1; len(pending) > 0; n++ {
		name := "console.log"
		if n > 1 {
			name = fmt.Sprintf("console-%d.log", n)
		}
		res, seen, err := boot(ctx, job, pending, filepath.Join(job.OutDir, name), evLog)
		if err != nil {
			return nil, err
		}
		out.VMs = append(out.VMs, res)
		if out.Features == nil {
			out.Features = features(seen)
		}
		j := judge(pending, seen, res, job.Vmlinux)
		out.Boot = append(out.Boot, j.boot...)
		if i := stoppedAt(job, pending, seen); i >= 0 {
			out.Results = append(out.Results, j.results[:i+1]...)
			for _, s := range pending[i+1:] {
				out.Results = append(out.Results, report.Result{Scenario: s.Name, Verdict: verdict.Skip,
					Reason: fmt.Sprintf("not run: the run stopped after %s, whose verdict was not as expected", pending[i].Name)})
			}
			break
		}
		out.Results = append(out.Results, j.results[:j.done]...)
		pending = pending[j.done:]
		if ctx.Err() != nil && len(pending) > 0 {
			return nil, ctx.Err()
		}
	}
	return out, nil
}

// bootVM boots a VM, sends the plan after the agent's hello, records every
// event, and stops the VM as soon as a scenario reports HANG (its kernel
// is no longer trusted).
func bootVM(ctx context.Context, job Job, pending []scenarios.Scenario, consoleLog string, evLog *events.Writer) (*vmtest.Result, []events.Event, error) {
	opts := append([]vmtest.Option{
		vmtest.WithKernel(job.Kernel),
		vmtest.WithInitramfs(job.Initramfs),
		vmtest.WithConsoleLog(consoleLog),
		vmtest.WithTimeouts(vmtest.Timeouts{Overall: overall(pending)}),
	}, job.VMOptions...)
	watch := &wedgeWatch{grace: wedgeGrace}
	var stream io.Writer = watch
	if job.Console != nil {
		stream = io.MultiWriter(job.Console, watch)
	}
	opts = append(opts, vmtest.WithConsoleStream(stream))
	vm, err := vmtest.Start(ctx, opts...)
	if err != nil {
		return nil, nil, err
	}
	watch.arm(vm.Kill)
	defer watch.disarm()
	plan := events.Plan{Claims: job.Claims, Params: job.Params}
	for _, s := range pending {
		plan.Scenarios = append(plan.Scenarios, events.ScenarioSpec{Name: s.Name, Script: s.Text})
	}
	var seen []events.Event
	for ev := range vm.Events() {
		evLog.Write(ev)
		seen = append(seen, ev)
		switch {
		case ev.Kind == events.Hello:
			if err := vm.Send(plan); err != nil {
				vm.Kill()
			}
		case ev.Kind == events.ScenarioEnd && (ev.Verdict == verdict.Hang || job.Stop != nil && job.Stop(ev.Scenario, ev.Verdict)):
			vm.Kill()
		}
	}
	return vm.Wait(), seen, nil
}

// stoppedAt is the index in pending of the scenario at whose end job.Stop
// stopped the VM, -1 when it did not.
func stoppedAt(job Job, pending []scenarios.Scenario, evs []events.Event) int {
	if job.Stop == nil {
		return -1
	}
	for _, ev := range evs {
		if ev.Kind == events.ScenarioEnd && job.Stop(ev.Scenario, ev.Verdict) {
			for i, s := range pending {
				if s.Name == ev.Scenario {
					return i
				}
			}
		}
	}
	return -1
}

// features returns the features of the first Features event in evs, nil
// when there is none.
func features(evs []events.Event) []events.Feature {
	for _, ev := range evs {
		if ev.Kind == events.Features {
			return ev.Features
		}
	}
	return nil
}

// wedgeGrace is how long the VM may go on printing after a report that
// wedges it, so the report's stack reaches the console.
const wedgeGrace = 2 * time.Second

// wedgeWatch reads the console as it comes and stops the VM shortly after
// a report the guest will not get past on its own (splat.Wedged: a hung
// task, an RCU stall), instead of leaving the scenario to its timeout.
type wedgeWatch struct {
	grace   time.Duration
	mu      sync.Mutex
	partial []byte
	seen    bool
	kill    func()
	timer   *time.Timer
}

func (w *wedgeWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		if !w.seen && splat.Wedged(string(w.partial[:i])) {
			w.seen = true
			w.start()
		}
		w.partial = w.partial[i+1:]
	}
	return len(p), nil
}

// arm sets what stopping the VM means; a wedge seen before counts.
func (w *wedgeWatch) arm(kill func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.kill = kill
	if w.seen {
		w.start()
	}
}

// start schedules the stop; called with mu held.
func (w *wedgeWatch) start() {
	if w.kill != nil && w.timer == nil {
		w.timer = time.AfterFunc(w.grace, w.kill)
	}
}

// disarm cancels a pending stop once the VM is gone.
func (w *wedgeWatch) disarm() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer != nil {
		w.timer.Stop()
	}
}

// overall bounds a VM by the sum of its scenarios' timeouts plus boot.
func overall(ss []scenarios.Scenario) time.Duration {
	d := 2 * time.Minute
	for _, s := range ss {
		d += s.Timeout
	}
	return d
}

// track is what the events say about one scenario.
type track struct {
	started, ended bool
	verdict        verdict.Verdict
	detail         string
	start, end     time.Time
}

// judgement is what one VM tells of its pending scenarios.
type judgement struct {
	// results has one Result per pending scenario; only the first done
	// are final, the rest did not run in this VM.
	results []report.Result
	done    int
	// boot holds the kernel reports printed outside any scenario.
	boot []report.Result
}

// judge turns the events and the VM result into results. A scenario the VM
// ended in, whose guest verdict is HANG, or during which the kernel
// reported something, is the last one this VM decides; when no scenario
// started at all, every pending scenario takes the VM's verdict (the
// kernel does not boot to a scenario, and another VM would not either).
func judge(pending []scenarios.Scenario, evs []events.Event, vm *vmtest.Result, vmlinux string) judgement {
	tr := map[string]*track{}
	anyStarted := false
	for _, ev := range evs {
		t := tr[ev.Scenario]
		if t == nil {
			t = &track{}
			tr[ev.Scenario] = t
		}
		switch ev.Kind {
		case events.ScenarioStart:
			t.started, t.start = true, ev.Time
			anyStarted = true
		case events.ScenarioEnd:
			t.ended, t.end, t.verdict, t.detail = true, ev.Time, ev.Verdict, ev.Detail
		}
	}
	splats := splat.ScanByScenario(vm.Console)
	j := judgement{done: len(pending)}
	for i, s := range pending {
		r := report.Result{Scenario: s.Name, Accel: vm.Accel.String(), ConsoleLog: vm.ConsoleLog}
		t := tr[s.Name]
		reps := splats[s.Name]
		switch {
		case t != nil && t.ended:
			r.Verdict, r.Reason = t.verdict, t.detail
			r.Duration = t.end.Sub(t.start)
			// After a kernel report the kernel is not trusted: a later
			// report may be its fallout (and lockdep is off after its
			// first). The agent stops when a scenario taints the kernel;
			// a report that taints nothing is caught here.
			if r.Verdict == verdict.Hang || len(reps) > 0 {
				j.done = min(j.done, i+1)
			}
		case t != nil && t.started:
			r.Verdict, r.Reason = vmVerdict(vm)
			j.done = min(j.done, i+1)
		case !anyStarted:
			r.Verdict, r.Reason = vmVerdict(vm)
			if tail := consoleTail(vm.Console, 5); tail != "" {
				r.Reason += "; console ends: " + tail
			}
			if reps = splats[""]; len(reps) > 0 {
				crash(&r, reps[0], vmlinux)
				reps = nil
			}
			r.Reason = "before any scenario ran: " + r.Reason
		default:
			r.Verdict = verdict.Skip
			r.Reason = "not run: the VM ended during an earlier scenario"
			j.done = min(j.done, i)
		}
		if len(reps) > 0 {
			crash(&r, reps[0], vmlinux)
		}
		if vm.ConsoleTruncated && r.Verdict == verdict.Pass {
			r.Verdict, r.Reason = verdict.Infra, "the console was cut short: kernel reports may be missing"
		}
		j.results = append(j.results, r)
	}
	if anyStarted {
		for _, rep := range splats[""] {
			r := report.Result{Scenario: BootScenario, Accel: vm.Accel.String(), ConsoleLog: vm.ConsoleLog}
			crash(&r, rep, vmlinux)
			r.Reason = "outside any scenario: " + r.Reason
			j.boot = append(j.boot, r)
		}
	}
	return j
}

// crash makes r a CRASH for the kernel report rep, with the report's stack
// decoded against vmlinux when there is one.
func crash(r *report.Result, rep splat.Report, vmlinux string) {
	r.Verdict = verdict.Crash
	r.Splat, r.SplatText = rep.Title, rep.Text
	r.Reason = "kernel report: " + rep.Title
	if vmlinux != "" {
		if stack, err := splat.Decode(vmlinux, rep.Text); err == nil {
			r.Stack = stack
		} else {
			r.Stack = "not decoded: " + err.Error()
		}
	}
}

// consoleTail returns the last n non-empty lines of a console (or of
// QEMU's stderr), joined by " | ", for reasons that must show how a boot
// ended.
func consoleTail(console []byte, n int) string {
	var lines []string
	for _, l := range strings.Split(strings.ReplaceAll(string(console), "\r", ""), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// vmVerdict classifies how the VM ended when a scenario did not finish.
func vmVerdict(vm *vmtest.Result) (verdict.Verdict, string) {
	msg := vm.Exit.String()
	if vm.Err != nil {
		msg = vm.Err.Error()
	}
	switch {
	case vm.Exit == vmtest.GuestPanicked:
		return verdict.Crash, "kernel panic"
	case vm.Exit.Timeout():
		return verdict.Hang, msg
	case vm.Exit == vmtest.QEMUFailed:
		return verdict.Infra, "QEMU failed: " + consoleTail([]byte(vm.QEMUStderr), 1)
	case vm.Exit == vmtest.Killed:
		return verdict.Infra, "interrupted"
	default:
		reason := fmt.Sprintf("the guest agent stopped early (%s)", msg)
		if e := agentError(vm.Console); e != "" {
			reason += ": " + e
		}
		return verdict.Infra, reason
	}
}

// agentError returns the error of the last agent error line on the
// console, "" when there is none.
func agentError(console []byte) string {
	s := string(console)
	i := strings.LastIndex(s, events.AgentError)
	if i < 0 {
		return ""
	}
	line, _, _ := strings.Cut(s[i+len(events.AgentError):], "\n")
	return strings.TrimSpace(line)
}
