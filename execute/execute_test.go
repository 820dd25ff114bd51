package execute

import (
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
	rs := Judge(scen("a", "b"), evs, &vmtest.Result{Accel: vmtest.AccelTCG, Exit: vmtest.GuestShutdown, Console: []byte(warnConsole)})
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
	rs := Judge(scen("a", "b"), evs, &vmtest.Result{Exit: vmtest.GuestPanicked, Console: []byte(panicConsole)})
	if rs[0].Verdict != report.Crash {
		t.Errorf("a (panicked in it): %+v", rs[0])
	}
	if rs[1].Verdict != report.Skip {
		t.Errorf("b (never reached): %+v", rs[1])
	}
	rs = Judge(scen("a"), evs, &vmtest.Result{Exit: vmtest.SilenceTimeout})
	if rs[0].Verdict != report.Hang {
		t.Errorf("silence: %+v", rs[0])
	}
	rs = Judge(scen("a"), nil, &vmtest.Result{Exit: vmtest.QEMUFailed, QEMUStderr: "qemu: could not load kernel\n"})
	if rs[0].Verdict != report.Infra || rs[0].Reason != "before any scenario ran: QEMU failed: qemu: could not load kernel" {
		t.Errorf("qemu failure: %+v", rs[0])
	}
	rs = Judge(scen("a"), nil, &vmtest.Result{Exit: vmtest.BootTimeout})
	if rs[0].Verdict != report.Hang {
		t.Errorf("boot timeout: %+v", rs[0])
	}
	bootPanic := "[    0.5] Kernel panic - not syncing: VFS: Unable to mount root fs\n"
	rs = Judge(scen("a"), nil, &vmtest.Result{Exit: vmtest.GuestPanicked, Console: []byte(bootPanic)})
	if rs[0].Verdict != report.Crash || rs[0].Splat == "" {
		t.Errorf("boot panic: %+v", rs[0])
	}
}
