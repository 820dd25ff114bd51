// Package execute runs a plan of scenarios in one VM and judges each
// scenario: the guest's own verdict, overridden by a kernel splat seen on
// the console during that scenario (CRASH), a timeout (HANG) or a QEMU
// failure (INFRA). It writes console.log and events.jsonl for the run.
package execute

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"fusevm/events"
	"fusevm/report"
	"fusevm/scenarios"
	"fusevm/vmtest"
	"fusevm/vmtest/splat"
)

// Job is one VM's worth of work.
type Job struct {
	Kernel    string
	Initramfs string
	Scenarios []scenarios.Scenario
	// Claims are passed to the guest for conditional outcomes.
	Claims []string
	// Params are per-kernel settings for the scripts (events.Plan.Params).
	Params map[string]string
	// OutDir receives console.log and events.jsonl.
	OutDir string
	// Console, if set, streams the serial console (for -v).
	Console io.Writer
	// VMOptions are extra vmtest options (accelerator, timeouts, CPUs...).
	VMOptions []vmtest.Option
}

// Outcome is the judged run: one Result per scenario (Kernel, Variant and
// the expectation are left for the caller), plus the VM's own result.
type Outcome struct {
	Results []report.Result
	VM      *vmtest.Result
}

// Run boots the VM, sends the plan after the agent's hello, records every
// event, and judges each scenario once the VM is gone.
func Run(ctx context.Context, job Job) (*Outcome, error) {
	if err := os.MkdirAll(job.OutDir, 0o755); err != nil {
		return nil, err
	}
	evFile, err := os.Create(filepath.Join(job.OutDir, "events.jsonl"))
	if err != nil {
		return nil, err
	}
	defer evFile.Close()
	evLog := events.NewWriter(evFile)
	opts := append([]vmtest.Option{
		vmtest.WithKernel(job.Kernel),
		vmtest.WithInitramfs(job.Initramfs),
		vmtest.WithConsoleLog(filepath.Join(job.OutDir, "console.log")),
		vmtest.WithTimeouts(vmtest.Timeouts{Overall: overall(job.Scenarios)}),
	}, job.VMOptions...)
	if job.Console != nil {
		opts = append(opts, vmtest.WithConsoleStream(job.Console))
	}
	vm, err := vmtest.Start(ctx, opts...)
	if err != nil {
		return nil, err
	}
	plan := events.Plan{Claims: job.Claims, Params: job.Params}
	for _, s := range job.Scenarios {
		plan.Scenarios = append(plan.Scenarios, events.ScenarioSpec{Name: s.Name, Script: s.Text})
	}
	var seen []events.Event
	for ev := range vm.Events() {
		evLog.Write(ev)
		seen = append(seen, ev)
		if ev.Kind == events.Hello {
			if err := vm.Send(plan); err != nil {
				vm.Kill()
			}
		}
	}
	res := vm.Wait()
	return &Outcome{Results: Judge(job.Scenarios, seen, res), VM: res}, nil
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
	verdict        string
	detail         string
	start, end     time.Time
}

// Judge turns the events and the VM result into one Result per scenario.
func Judge(ss []scenarios.Scenario, evs []events.Event, vm *vmtest.Result) []report.Result {
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
	var out []report.Result
	for _, s := range ss {
		r := report.Result{Scenario: s.Name, Accel: vm.Accel.String(), ConsoleLog: vm.ConsoleLog}
		t := tr[s.Name]
		reps := splats[s.Name]
		switch {
		case t != nil && t.ended:
			r.Verdict, r.Reason = report.Verdict(t.verdict), t.detail
			r.Duration = t.end.Sub(t.start)
		case t != nil && t.started:
			r.Verdict, r.Reason = vmVerdict(vm)
		case !anyStarted:
			r.Verdict, r.Reason = vmVerdict(vm)
			r.Reason = "before any scenario ran: " + r.Reason
			reps = splats[""]
		default:
			r.Verdict = report.Skip
			r.Reason = "not run: the VM ended during an earlier scenario"
		}
		if len(reps) > 0 {
			r.Verdict = report.Crash
			r.Splat, r.SplatText = reps[0].Title, reps[0].Text
			r.Reason = "kernel splat: " + reps[0].Title
		}
		out = append(out, r)
	}
	return out
}

// vmVerdict classifies how the VM ended when a scenario did not finish.
func vmVerdict(vm *vmtest.Result) (report.Verdict, string) {
	msg := vm.Exit.String()
	if vm.Err != nil {
		msg = vm.Err.Error()
	}
	switch {
	case vm.Exit == vmtest.GuestPanicked:
		return report.Crash, "kernel panic"
	case vm.Exit.Timeout():
		return report.Hang, msg
	case vm.Exit == vmtest.QEMUFailed:
		return report.Infra, "QEMU failed: " + strings.TrimSpace(lastLine(vm.QEMUStderr))
	case vm.Exit == vmtest.Killed:
		return report.Infra, "interrupted"
	default:
		return report.Infra, fmt.Sprintf("the guest agent stopped early (%s)", msg)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
