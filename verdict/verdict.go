// Package verdict is the outcome class of one scenario run, the one type
// the guest (the interpreter and the agent, in events) and the host
// (execute, plan, harness, report, bisect) use for it.
//
// It is a leaf shared by host and guest programs: it imports nothing, so
// the guest reaches no host package through it and the host's report does
// not depend on the event schema for its verdicts. A Verdict is a string,
// so it encodes in JSON (events.jsonl, results.json) as its text.
package verdict

// Verdict is the outcome class of one scenario run, as described in
// docs/design.md ("Verdicts and expectations").
type Verdict string

// The verdicts. The guest gives PASS, FAIL or HANG; the host may turn a
// scenario into CRASH, HANG or INFRA from the console and the VM's end,
// gives SKIP and INFRA to cells that did not run, and FLAKY to repeats
// that disagree.
const (
	// Pass: every step gave its expected outcome.
	Pass Verdict = "PASS"
	// Fail: a step gave another outcome (the reason names the line).
	Fail Verdict = "FAIL"
	// Crash: a kernel report (panic, oops or any splat) during the
	// scenario, or the kernel ended the VM in it.
	Crash Verdict = "CRASH"
	// Hang: a timeout: the scenario's own, or the VM's boot, silence or
	// overall limit.
	Hang Verdict = "HANG"
	// Skip: the variant did not apply, configure or build, or the scenario
	// was not reached.
	Skip Verdict = "SKIP"
	// Infra: QEMU or host trouble (a source or image that cannot be
	// fetched, a VM that cannot start), the guest agent stopping early, an
	// interrupted run: nothing is known of the kernel.
	Infra Verdict = "INFRA"
	// Flaky: repeats of one scenario disagreed; never counted as PASS.
	Flaky Verdict = "FLAKY"
)
