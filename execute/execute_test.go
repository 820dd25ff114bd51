package execute

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fusevm/events"
	"fusevm/scenarios"
	"fusevm/scenarios/script"
	"fusevm/verdict"
	"fusevm/vmtest"
)

func scen(names ...string) []scenarios.Scenario {
	var out []scenarios.Scenario
	for _, n := range names {
		out = append(out, scenarios.Scenario{Script: &script.Script{Name: n}})
	}
	return out
}

func ev(kind events.Kind, scenario string, vd verdict.Verdict, detail string) events.Event {
	return events.Event{Time: time.Unix(100, 0), Kind: kind, Scenario: scenario, Verdict: vd, Detail: detail}
}

// goldenConsole returns the console of one of the splat scanner's golden
// logs: consoles of kernels fusevm built, with the fault-injection series.
func goldenConsole(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "vmtest", "splat", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	_, console, ok := bytes.Cut(data, []byte("\n\n"))
	if !ok {
		t.Fatalf("%s: no header", name)
	}
	return console
}

func TestJudgeReportBecomesCrash(t *testing.T) {
	evs := []events.Event{
		ev(events.Hello, "", "", "7.3.4"),
		ev(events.ScenarioStart, "fault-warn", "", ""), ev(events.ScenarioEnd, "fault-warn", verdict.Pass, ""),
		ev(events.Done, "", "", ""),
	}
	ss := scen("fault-warn")
	j := judge(ss, evs, &vmtest.Result{Accel: vmtest.AccelTCG, Exit: vmtest.GuestShutdown, Console: goldenConsole(t, "debian-7.3-base-warn.log")}, "")
	r := j.results[0]
	if r.Verdict != verdict.Crash || r.Splat != "WARNING in fusevm_fault_inject" || r.SplatText == "" {
		t.Errorf("fault-warn: %+v", r)
	}
	if r.Accel != "tcg" || j.done != 1 || len(j.boot) != 0 {
		t.Errorf("accel %q, done %d, boot %v", r.Accel, j.done, j.boot)
	}
	// The same scenario on a console whose kernel reported nothing passes.
	clean := judge(ss, evs, &vmtest.Result{Exit: vmtest.GuestShutdown, Console: goldenConsole(t, "debian-7.3-base-lockdep.log")}, "")
	if clean.results[0].Verdict != verdict.Pass {
		t.Errorf("clean console: %+v", clean.results[0])
	}
}

// TestJudgeReportEndsTheVMsTurn: the scenario after one during which the
// kernel reported something is not decided by that VM (it runs again in a
// fresh one), though the guest went on and passed it.
func TestJudgeReportEndsTheVMsTurn(t *testing.T) {
	evs := []events.Event{
		ev(events.Hello, "", "", "7.3.4"),
		ev(events.ScenarioStart, "fault-warn", "", ""), ev(events.ScenarioEnd, "fault-warn", verdict.Pass, ""),
		ev(events.ScenarioStart, "after", "", ""), ev(events.ScenarioEnd, "after", verdict.Pass, ""),
		ev(events.Done, "", "", ""),
	}
	vm := &vmtest.Result{Exit: vmtest.GuestShutdown, Console: goldenConsole(t, "debian-7.3-base-warn.log")}
	j := judge(scen("fault-warn", "after"), evs, vm, "")
	if j.done != 1 || j.results[0].Verdict != verdict.Crash {
		t.Errorf("done %d, first %+v; want 1 and CRASH", j.done, j.results[0])
	}
	// Without a report both are this VM's.
	vm.Console = goldenConsole(t, "debian-7.3-base-lockdep.log")
	if j := judge(scen("fault-warn", "after"), evs, vm, ""); j.done != 2 {
		t.Errorf("clean console: done %d, want 2", j.done)
	}
}

func TestJudgeVMDeath(t *testing.T) {
	null := goldenConsole(t, "debian-7.3-base-null.log")
	evs := []events.Event{ev(events.Hello, "", "", ""), ev(events.ScenarioStart, "fault-null", "", "")}
	j := judge(scen("fault-null", "b"), evs, &vmtest.Result{Exit: vmtest.GuestPanicked, Console: null}, "")
	if r := j.results[0]; r.Verdict != verdict.Crash || r.Splat != "BUG: kernel NULL pointer dereference in fusevm_fault_inject" {
		t.Errorf("fault-null (the kernel died in it): %+v", r)
	}
	if j.done != 1 {
		t.Errorf("done %d: b must run again in a fresh VM", j.done)
	}
	rs := judge(scen("a"), evs[:1], &vmtest.Result{Exit: vmtest.SilenceTimeout}, "").results
	if rs[0].Verdict != verdict.Hang {
		t.Errorf("silence: %+v", rs[0])
	}
	rs = judge(scen("a"), nil, &vmtest.Result{Exit: vmtest.QEMUFailed, QEMUStderr: "qemu: could not load kernel\n"}, "").results
	if rs[0].Verdict != verdict.Infra || rs[0].Reason != "before any scenario ran: QEMU failed: qemu: could not load kernel" {
		t.Errorf("qemu failure: %+v", rs[0])
	}
	rs = judge(scen("a"), nil, &vmtest.Result{Exit: vmtest.BootTimeout}, "").results
	if rs[0].Verdict != verdict.Hang {
		t.Errorf("boot timeout: %+v", rs[0])
	}
	boot := goldenConsole(t, "debian-7.3-base-boot-no-initramfs.log")
	rs = judge(scen("a", "b"), nil, &vmtest.Result{Exit: vmtest.GuestPanicked, Console: boot}, "").results
	for _, r := range rs {
		if r.Verdict != verdict.Crash || r.Splat != "kernel panic: No working init found" ||
			r.Reason != "before any scenario ran: kernel report: kernel panic: No working init found" {
			t.Errorf("boot panic: %+v", r)
		}
	}
}

// TestJudgeReportOutsideScenarios: a report printed after the last
// scenario ended is the variant's, as a (boot) result.
func TestJudgeReportOutsideScenarios(t *testing.T) {
	warn := goldenConsole(t, "debian-7.3-base-warn.log")
	// Move the scenario's end marker above the report.
	start := bytes.Index(warn, []byte("fusevm: scenario fault-warn start"))
	end := start + bytes.IndexByte(warn[start:], '\n') + 1
	moved := append(append(append([]byte{}, warn[:end]...), []byte("[    3.800000] fusevm: scenario fault-warn end\n")...), warn[end:]...)
	evs := []events.Event{
		ev(events.Hello, "", "", ""),
		ev(events.ScenarioStart, "fault-warn", "", ""), ev(events.ScenarioEnd, "fault-warn", verdict.Pass, ""),
		ev(events.Done, "", "", ""),
	}
	j := judge(scen("fault-warn"), evs, &vmtest.Result{Exit: vmtest.GuestShutdown, Console: moved}, "")
	if j.results[0].Verdict != verdict.Pass {
		t.Errorf("fault-warn: %+v", j.results[0])
	}
	if len(j.boot) != 1 || j.boot[0].Scenario != BootScenario || j.boot[0].Verdict != verdict.Crash ||
		!strings.HasPrefix(j.boot[0].Reason, "outside any scenario: ") {
		t.Errorf("boot results: %+v", j.boot)
	}
}

// fakeVM is one scripted VM for run: how far it gets in the scenarios it
// is given, and how it ends.
type fakeVM struct {
	ends     int  // scenarios it finishes (PASS) before the one it stops in
	stopIn   bool // it stops inside the next scenario (else between two)
	hang     bool // the next scenario reports HANG (the host then kills it)
	exit     vmtest.ExitReason
	noHello  bool // it never boots to the agent
	consoles []string
	features []events.Feature // reported after the hello, if any
}

// fakeRun plays the VMs in order and records what each was asked to run.
func fakeRun(vms []fakeVM, asked *[][]string) vmRun {
	n := 0
	return func(ctx context.Context, job Job, pending []scenarios.Scenario, consoleLog string, evLog *events.Writer) (*vmtest.Result, []events.Event, error) {
		vm := vms[n]
		n++
		var names []string
		for _, s := range pending {
			names = append(names, s.Name)
		}
		*asked = append(*asked, names)
		res := &vmtest.Result{Accel: vmtest.AccelTCG, Exit: vm.exit, ConsoleLog: consoleLog}
		if vm.noHello {
			return res, nil, nil
		}
		evs := []events.Event{ev(events.Hello, "", "", "")}
		if vm.features != nil {
			evs = append(evs, events.Event{Kind: events.Features, Features: vm.features})
		}
		i := 0
		for ; i < vm.ends && i < len(pending); i++ {
			evs = append(evs, ev(events.ScenarioStart, pending[i].Name, "", ""), ev(events.ScenarioEnd, pending[i].Name, verdict.Pass, ""))
		}
		if i < len(pending) && (vm.stopIn || vm.hang) {
			evs = append(evs, ev(events.ScenarioStart, pending[i].Name, "", ""))
			if vm.hang {
				evs = append(evs, ev(events.ScenarioEnd, pending[i].Name, verdict.Hang, "scenario timed out"))
			}
		}
		if i == len(pending) {
			evs = append(evs, ev(events.Done, "", "", ""))
		}
		return res, evs, nil
	}
}

func TestRunFreshVMAfterFatalScenario(t *testing.T) {
	cases := []struct {
		name    string
		vms     []fakeVM
		asked   [][]string
		verdict map[string]verdict.Verdict
	}{
		{
			name:    "healthy",
			vms:     []fakeVM{{ends: 4, exit: vmtest.GuestShutdown}},
			asked:   [][]string{{"a", "b", "c", "d"}},
			verdict: map[string]verdict.Verdict{"a": verdict.Pass, "b": verdict.Pass, "c": verdict.Pass, "d": verdict.Pass},
		},
		{
			name: "a panic in b, a hang in c",
			vms: []fakeVM{
				{ends: 1, stopIn: true, exit: vmtest.GuestPanicked},
				{ends: 0, hang: true, exit: vmtest.Killed},
				{ends: 1, exit: vmtest.GuestShutdown},
			},
			asked:   [][]string{{"a", "b", "c", "d"}, {"c", "d"}, {"d"}},
			verdict: map[string]verdict.Verdict{"a": verdict.Pass, "b": verdict.Crash, "c": verdict.Hang, "d": verdict.Pass},
		},
		{
			name: "QEMU gone between scenarios",
			vms: []fakeVM{
				{ends: 2, exit: vmtest.QEMUFailed},
				{ends: 2, exit: vmtest.GuestShutdown},
			},
			asked:   [][]string{{"a", "b", "c", "d"}, {"c", "d"}},
			verdict: map[string]verdict.Verdict{"a": verdict.Pass, "b": verdict.Pass, "c": verdict.Pass, "d": verdict.Pass},
		},
		{
			name: "the fresh VM does not boot: no more VMs",
			vms: []fakeVM{
				{ends: 0, stopIn: true, exit: vmtest.GuestPanicked},
				{noHello: true, exit: vmtest.BootTimeout},
			},
			asked:   [][]string{{"a", "b", "c", "d"}, {"b", "c", "d"}},
			verdict: map[string]verdict.Verdict{"a": verdict.Crash, "b": verdict.Hang, "c": verdict.Hang, "d": verdict.Hang},
		},
		{
			name: "every scenario kills its VM",
			vms: []fakeVM{
				{stopIn: true, exit: vmtest.GuestPanicked}, {stopIn: true, exit: vmtest.GuestPanicked},
				{stopIn: true, exit: vmtest.GuestPanicked}, {stopIn: true, exit: vmtest.GuestPanicked},
			},
			asked:   [][]string{{"a", "b", "c", "d"}, {"b", "c", "d"}, {"c", "d"}, {"d"}},
			verdict: map[string]verdict.Verdict{"a": verdict.Crash, "b": verdict.Crash, "c": verdict.Crash, "d": verdict.Crash},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var asked [][]string
			out, err := run(context.Background(), Job{Scenarios: scen("a", "b", "c", "d"), OutDir: t.TempDir()}, fakeRun(tc.vms, &asked))
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(asked) != fmt.Sprint(tc.asked) {
				t.Errorf("VMs were asked to run %v, want %v", asked, tc.asked)
			}
			if len(out.VMs) != len(tc.asked) {
				t.Errorf("%d VM results, want %d", len(out.VMs), len(tc.asked))
			}
			if len(out.Results) != 4 {
				t.Fatalf("%d results, want 4", len(out.Results))
			}
			for _, r := range out.Results {
				if r.Verdict != tc.verdict[r.Scenario] {
					t.Errorf("%s: %s (%s), want %s", r.Scenario, r.Verdict, r.Reason, tc.verdict[r.Scenario])
				}
			}
			if tc.vms[len(tc.vms)-1].noHello && !strings.HasPrefix(out.Results[len(out.Results)-1].Reason, "before any scenario ran") {
				t.Errorf("a VM that did not boot should say so: %q", out.Results[3].Reason)
			}
		})
	}
}

// TestRunStop: a Stop that answers true at a scenario's end stops the
// run there, in that VM: the scenarios after it are SKIP and no fresh VM
// boots for them, not even after a HANG.
func TestRunStop(t *testing.T) {
	for _, tc := range []struct {
		name   string
		vm     fakeVM
		stopAt string
		want   map[string]verdict.Verdict
	}{
		{"at b", fakeVM{ends: 4, exit: vmtest.Killed}, "b", map[string]verdict.Verdict{"a": verdict.Pass, "b": verdict.Pass, "c": verdict.Skip, "d": verdict.Skip}},
		{"at a hang", fakeVM{ends: 2, hang: true, exit: vmtest.Killed}, "c", map[string]verdict.Verdict{"a": verdict.Pass, "b": verdict.Pass, "c": verdict.Hang, "d": verdict.Skip}},
		{"never", fakeVM{ends: 4, exit: vmtest.GuestShutdown}, "", map[string]verdict.Verdict{"a": verdict.Pass, "b": verdict.Pass, "c": verdict.Pass, "d": verdict.Pass}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var asked [][]string
			stop := func(s string, _ verdict.Verdict) bool { return s == tc.stopAt }
			out, err := run(context.Background(), Job{Scenarios: scen("a", "b", "c", "d"), OutDir: t.TempDir(), Stop: stop}, fakeRun([]fakeVM{tc.vm}, &asked))
			if err != nil {
				t.Fatal(err)
			}
			if len(asked) != 1 || len(out.Results) != 4 {
				t.Fatalf("%d VMs, %d results; want 1 and 4", len(asked), len(out.Results))
			}
			for _, r := range out.Results {
				if r.Verdict != tc.want[r.Scenario] {
					t.Errorf("%s: %s (%s), want %s", r.Scenario, r.Verdict, r.Reason, tc.want[r.Scenario])
				}
				if r.Verdict == verdict.Skip && !strings.Contains(r.Reason, "stopped after "+tc.stopAt) {
					t.Errorf("%s: reason %q", r.Scenario, r.Reason)
				}
			}
		})
	}
}

// TestRunKeepsFirstFeatures: the features of the first VM are the job's;
// the fresh VM after a fatal scenario reports again, and that is not kept.
func TestRunKeepsFirstFeatures(t *testing.T) {
	first := []events.Feature{{Name: events.FeatureCloseAll, State: events.NotSupported, Detail: "FUSE_DEV_IOC_BACKING_CLOSE_ALL answers ENOTTY"}}
	second := []events.Feature{{Name: events.FeatureCloseAll, State: events.Supported}}
	var asked [][]string
	out, err := run(context.Background(), Job{Scenarios: scen("a", "b"), OutDir: t.TempDir()}, fakeRun([]fakeVM{
		{ends: 0, stopIn: true, exit: vmtest.GuestPanicked, features: first},
		{ends: 1, exit: vmtest.GuestShutdown, features: second},
	}, &asked))
	if err != nil {
		t.Fatal(err)
	}
	if len(out.VMs) != 2 || fmt.Sprint(out.Features) != fmt.Sprint(first) {
		t.Errorf("%d VMs, features %+v; want 2 and %+v", len(out.VMs), out.Features, first)
	}
	out, err = run(context.Background(), Job{Scenarios: scen("a"), OutDir: t.TempDir()}, fakeRun([]fakeVM{{ends: 1, exit: vmtest.GuestShutdown}}, &asked))
	if err != nil || out.Features != nil {
		t.Errorf("no report: features %+v, %v", out.Features, err)
	}
}

// TestJudgeAgentError: when the agent stops on an error (an event it could
// not write), the cell of the scenario it stopped in is INFRA and quotes
// the error it logged to the console.
func TestJudgeAgentError(t *testing.T) {
	console := []byte("[    2.100000] fusevm: scenario a start\r\n" +
		"[    2.200000] fusevm: agent error: write scenario_end event to the host: input/output error\r\n" +
		"[    2.300000] reboot: Power down\r\n")
	evs := []events.Event{ev(events.Hello, "", "", ""), ev(events.ScenarioStart, "a", "", "")}
	j := judge(scen("a", "b"), evs, &vmtest.Result{Exit: vmtest.GuestShutdown, Console: console}, "")
	want := fmt.Sprintf("the guest agent stopped early (%s): write scenario_end event to the host: input/output error", vmtest.GuestShutdown)
	if r := j.results[0]; r.Verdict != verdict.Infra || r.Reason != want {
		t.Errorf("a: %s %q, want INFRA %q", r.Verdict, r.Reason, want)
	}
	if j.done != 1 {
		t.Errorf("done %d: b must run in a fresh VM", j.done)
	}
	// Without the agent's line, the reason says only how the VM ended.
	j = judge(scen("a"), evs, &vmtest.Result{Exit: vmtest.GuestShutdown}, "")
	if r := j.results[0]; r.Reason != fmt.Sprintf("the guest agent stopped early (%s)", vmtest.GuestShutdown) {
		t.Errorf("no agent error: %q", r.Reason)
	}
}

// TestWedgeWatchStopsAHungGuest feeds real consoles to the watch in small
// chunks: a hung task's report stops the VM once, after the grace period;
// consoles with other reports or none never do.
func TestWedgeWatchStopsAHungGuest(t *testing.T) {
	for _, tc := range []struct {
		log  string
		kill bool
	}{
		{"debian-7.3-base-hung.log", true},
		{"debian-7.3-base-warn.log", false},
		{"debian-7.3-base-null.log", false},
		{"debian-7.3-base-lockdep.log", false},
	} {
		t.Run(tc.log, func(t *testing.T) {
			console := goldenConsole(t, tc.log)
			kills := make(chan struct{}, 4)
			w := &wedgeWatch{grace: 50 * time.Millisecond}
			w.arm(func() { kills <- struct{}{} })
			for len(console) > 0 {
				n := min(7, len(console))
				w.Write(console[:n])
				console = console[n:]
			}
			select {
			case <-kills:
				if !tc.kill {
					t.Fatal("stopped a VM that was not wedged")
				}
			case <-time.After(500 * time.Millisecond):
				if tc.kill {
					t.Fatal("a hung task did not stop the VM")
				}
			}
			w.disarm()
			select {
			case <-kills:
				t.Fatal("stopped twice")
			case <-time.After(100 * time.Millisecond):
			}
		})
	}
	// A report seen before the VM handle exists still stops it.
	w := &wedgeWatch{grace: time.Millisecond}
	w.Write(goldenConsole(t, "debian-7.3-base-hung.log"))
	killed := make(chan struct{})
	w.arm(func() { close(killed) })
	select {
	case <-killed:
	case <-time.After(time.Second):
		t.Fatal("a wedge seen before arm was forgotten")
	}
}
