package execute

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"fusevm/events"
	"fusevm/report"
	"fusevm/scenarios"
	"fusevm/scenarios/script"
	"fusevm/vmtest"
)

func scen(names ...string) []scenarios.Scenario {
	var out []scenarios.Scenario
	for _, n := range names {
		out = append(out, scenarios.Scenario{Script: &script.Script{Name: n}})
	}
	return out
}

func ev(kind events.Kind, scenario, verdict, detail string) events.Event {
	return events.Event{Time: time.Unix(100, 0), Kind: kind, Scenario: scenario, Verdict: verdict, Detail: detail}
}

const warnConsole = `[    1.000000] fusevm: scenario a start
[    1.100000] fusevm: scenario a end
[    1.200000] fusevm: scenario b start
[    1.300000] ------------[ cut here ]------------
[    1.300001] WARNING: CPU: 0 PID: 50 at fs/fuse/iomode.c:106 fuse_inode_uncached_io_start+0x50/0x60
[    1.300002] Modules linked in:
[    1.300003] CPU: 0 PID: 50 Comm: fusetestd Not tainted 7.3.4 #1
[    1.300004] RIP: 0010:fuse_inode_uncached_io_start+0x50/0x60
[    1.300005] Call Trace:
[    1.300006]  <TASK>
[    1.300007]  fuse_file_io_open+0x30/0x90
[    1.300008]  </TASK>
[    1.300009] ---[ end trace 0000000000000000 ]---
[    1.400000] fusevm: scenario b end
`

func TestJudgeSplatBecomesCrash(t *testing.T) {
	evs := []events.Event{
		ev(events.Hello, "", "", "7.3.4"),
		ev(events.ScenarioStart, "a", "", ""), ev(events.ScenarioEnd, "a", "PASS", ""),
		ev(events.ScenarioStart, "b", "", ""), ev(events.ScenarioEnd, "b", "PASS", ""),
		ev(events.Done, "", "", ""),
	}
	rs := judge(scen("a", "b"), evs, &vmtest.Result{Accel: vmtest.AccelTCG, Exit: vmtest.GuestShutdown, Console: []byte(warnConsole)}, "").results
	if rs[0].Verdict != report.Pass {
		t.Errorf("a: %+v", rs[0])
	}
	if rs[1].Verdict != report.Crash || rs[1].Splat == "" || rs[1].SplatText == "" {
		t.Errorf("b: %+v", rs[1])
	}
	if rs[0].Accel != "tcg" {
		t.Errorf("accel %q", rs[0].Accel)
	}
}

func TestJudgeVMDeath(t *testing.T) {
	panicConsole := "[    1.0] fusevm: scenario a start\n[    1.1] Kernel panic - not syncing: Fatal exception\n"
	evs := []events.Event{ev(events.Hello, "", "", ""), ev(events.ScenarioStart, "a", "", "")}
	rs := judge(scen("a", "b"), evs, &vmtest.Result{Exit: vmtest.GuestPanicked, Console: []byte(panicConsole)}, "").results
	if rs[0].Verdict != report.Crash {
		t.Errorf("a (panicked in it): %+v", rs[0])
	}
	if rs[1].Verdict != report.Skip {
		t.Errorf("b (never reached): %+v", rs[1])
	}
	rs = judge(scen("a"), evs, &vmtest.Result{Exit: vmtest.SilenceTimeout}, "").results
	if rs[0].Verdict != report.Hang {
		t.Errorf("silence: %+v", rs[0])
	}
	rs = judge(scen("a"), nil, &vmtest.Result{Exit: vmtest.QEMUFailed, QEMUStderr: "qemu: could not load kernel\n"}, "").results
	if rs[0].Verdict != report.Infra || rs[0].Reason != "before any scenario ran: QEMU failed: qemu: could not load kernel" {
		t.Errorf("qemu failure: %+v", rs[0])
	}
	rs = judge(scen("a"), nil, &vmtest.Result{Exit: vmtest.BootTimeout}, "").results
	if rs[0].Verdict != report.Hang {
		t.Errorf("boot timeout: %+v", rs[0])
	}
	bootPanic := "[    0.5] Kernel panic - not syncing: VFS: Unable to mount root fs\n"
	rs = judge(scen("a"), nil, &vmtest.Result{Exit: vmtest.GuestPanicked, Console: []byte(bootPanic)}, "").results
	if rs[0].Verdict != report.Crash || rs[0].Splat == "" {
		t.Errorf("boot panic: %+v", rs[0])
	}
}

// fakeVM is one scripted VM for run: how far it gets in the scenarios it
// is given, and how it ends.
type fakeVM struct {
	ends     int    // scenarios it finishes (PASS) before the one it stops in
	stopIn   bool   // it stops inside the next scenario (else between two)
	hang     bool   // the next scenario reports HANG (the host then kills it)
	exit     vmtest.ExitReason
	noHello  bool // it never boots to the agent
	consoles []string
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
		i := 0
		for ; i < vm.ends && i < len(pending); i++ {
			evs = append(evs, ev(events.ScenarioStart, pending[i].Name, "", ""), ev(events.ScenarioEnd, pending[i].Name, "PASS", ""))
		}
		if i < len(pending) && (vm.stopIn || vm.hang) {
			evs = append(evs, ev(events.ScenarioStart, pending[i].Name, "", ""))
			if vm.hang {
				evs = append(evs, ev(events.ScenarioEnd, pending[i].Name, "HANG", "scenario timed out"))
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
		verdict map[string]report.Verdict
	}{
		{
			name:    "healthy",
			vms:     []fakeVM{{ends: 4, exit: vmtest.GuestShutdown}},
			asked:   [][]string{{"a", "b", "c", "d"}},
			verdict: map[string]report.Verdict{"a": report.Pass, "b": report.Pass, "c": report.Pass, "d": report.Pass},
		},
		{
			name: "a panic in b, a hang in c",
			vms: []fakeVM{
				{ends: 1, stopIn: true, exit: vmtest.GuestPanicked},
				{ends: 0, hang: true, exit: vmtest.Killed},
				{ends: 1, exit: vmtest.GuestShutdown},
			},
			asked:   [][]string{{"a", "b", "c", "d"}, {"c", "d"}, {"d"}},
			verdict: map[string]report.Verdict{"a": report.Pass, "b": report.Crash, "c": report.Hang, "d": report.Pass},
		},
		{
			name: "QEMU gone between scenarios",
			vms: []fakeVM{
				{ends: 2, exit: vmtest.QEMUFailed},
				{ends: 2, exit: vmtest.GuestShutdown},
			},
			asked:   [][]string{{"a", "b", "c", "d"}, {"c", "d"}},
			verdict: map[string]report.Verdict{"a": report.Pass, "b": report.Pass, "c": report.Pass, "d": report.Pass},
		},
		{
			name: "the fresh VM does not boot: no more VMs",
			vms: []fakeVM{
				{ends: 0, stopIn: true, exit: vmtest.GuestPanicked},
				{noHello: true, exit: vmtest.BootTimeout},
			},
			asked:   [][]string{{"a", "b", "c", "d"}, {"b", "c", "d"}},
			verdict: map[string]report.Verdict{"a": report.Crash, "b": report.Hang, "c": report.Hang, "d": report.Hang},
		},
		{
			name: "every scenario kills its VM",
			vms: []fakeVM{
				{stopIn: true, exit: vmtest.GuestPanicked}, {stopIn: true, exit: vmtest.GuestPanicked},
				{stopIn: true, exit: vmtest.GuestPanicked}, {stopIn: true, exit: vmtest.GuestPanicked},
			},
			asked:   [][]string{{"a", "b", "c", "d"}, {"b", "c", "d"}, {"c", "d"}, {"d"}},
			verdict: map[string]report.Verdict{"a": report.Crash, "b": report.Crash, "c": report.Crash, "d": report.Crash},
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
