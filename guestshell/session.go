package guestshell

import (
	"context"
	"fmt"
	"strings"
	"time"

	"fusevm/events"
	"fusevm/scenarios/interp"
	"fusevm/scenarios/script"
)

// A step session runs scenario steps one at a time in one run of the
// interpreter, so that what a step sets up (the backing tmpfs, the daemon
// and its keeper, the mount, open handles, variables) is there for the
// next. The interpreter runs a script made of one block, "repeat" a
// practically endless number of times around one step; the interpreter
// reads the block's body again on every round, and it reports every step
// through Env.Emit from the goroutine that runs the steps, before the
// next round. So Emit, after reporting a step, waits for the user's next
// step and makes it the body: the next round runs it. Ending the session
// cancels the run, which aborts the connection, unmounts and stops the
// daemon as at the end of any scenario.
type session struct {
	// scope holds the connections and backing filesystems the steps so far
	// declared, which the next steps may name.
	scope  *script.Scope
	rep    *script.Step
	next   chan *script.Step
	events chan stepEvent
	done   chan interp.Result
	cancel context.CancelFunc
	n      int // steps given so far (their line numbers)
}

// stepEvent is a step's report, and whether it failed the session (an
// outcome other than the one the step asked for with "=>").
type stepEvent struct {
	ev     events.Event
	failed bool
}

// sessionTimeout is the interpreter's timeout for a session: the user
// sets the pace.
const sessionTimeout = 100 * 365 * 24 * time.Hour

// placeholder is the first round's step, which nobody asked for.
func placeholder() *script.Step { return &script.Step{Op: "sleep", Args: []string{"0s"}} }

// startSession starts the interpreter for a session whose steps so far
// declared what scope holds.
func (sh *shell) startSession(ctx context.Context, scope *script.Scope) *session {
	ctx, cancel := context.WithCancel(ctx)
	s := &session{
		scope:  scope,
		next:   make(chan *script.Step),
		events: make(chan stepEvent),
		done:   make(chan interp.Result, 1),
		cancel: cancel,
	}
	s.rep = &script.Step{Op: "repeat", Args: []string{"1000000000"}, Body: []*script.Step{placeholder()}}
	sc := &script.Script{Name: "shell", File: "shell", Timeout: sessionTimeout, Steps: []*script.Step{s.rep}}
	var current *script.Step
	emit := func(ev events.Event) {
		if current != nil {
			failed := false
			if want := current.Expect.Resolve(sh.claims); want != script.Any {
				_, got, _ := strings.Cut(ev.Detail, " => ")
				got, _, _ = strings.Cut(got, " (")
				failed = got != want
			}
			select {
			case s.events <- stepEvent{ev, failed}:
			case <-ctx.Done():
				return
			}
			if failed {
				return // the interpreter ends the session with FAIL
			}
		}
		select {
		case st := <-s.next:
			current = st
			s.rep.Body = []*script.Step{st}
		case <-ctx.Done():
		}
	}
	sh.mark("fusevm: scenario shell start")
	go func() {
		s.done <- interp.Run(ctx, sc, interp.Env{Claims: sh.claims, Params: sh.plan.Params, Root: sh.env.Root, Daemon: sh.env.Daemon, Spawner: sh.env.Spawner, Emit: emit})
	}()
	return s
}

// parseStep parses one step line, the session's nth, which may name what
// the session's earlier steps declared (scope). Without "=>" any outcome
// is accepted, so that a step giving an error is shown, not fatal to the
// session.
func parseStep(scope *script.Scope, line string, n int) (*script.Step, error) {
	if strings.TrimSpace(line) == "" {
		return nil, fmt.Errorf("step LINE: a scenario step, e.g. step backing 16M")
	}
	sc, err := scope.Parse("step", "step", strings.Repeat("\n", n-1)+line)
	if err != nil {
		return nil, err
	}
	if len(sc.Steps) != 1 {
		return nil, fmt.Errorf("one step at a time")
	}
	st := sc.Steps[0]
	if st.Op == "repeat" || st.Op == "race" || st.Op == "thread" {
		return nil, fmt.Errorf("%s is a block: put it in a .fvm file and run it", st.Op)
	}
	if st.Expect == nil {
		st.Expect = &script.Outcome{IfClaim: script.Any}
	}
	return st, nil
}

// step runs one step in the session, starting the session first.
func (sh *shell) step(ctx context.Context, line string) {
	if sh.session != nil {
		select {
		case res := <-sh.session.done:
			sh.sessionEnded(res)
		default:
		}
	}
	n, scope := 1, script.NewScope()
	if sh.session != nil {
		n, scope = sh.session.n+1, sh.session.scope
	}
	st, err := parseStep(scope, line, n)
	if err != nil {
		sh.errorf("%v", err)
		return
	}
	if sh.session == nil {
		sh.session = sh.startSession(ctx, scope)
		fmt.Fprintln(sh.out, "step session started (end ends it)")
	}
	s := sh.session
	s.n = n
	select {
	case s.next <- st:
	case res := <-s.done:
		sh.sessionEnded(res)
		return
	}
	timeout := time.NewTimer(sh.env.StepTimeout)
	defer timeout.Stop()
	select {
	case e := <-s.events:
		fmt.Fprintf(sh.out, "  %s\n", e.ev.Detail)
		if e.failed {
			sh.sessionEnded(<-s.done)
		}
	case res := <-s.done:
		sh.sessionEnded(res)
	case <-timeout.C:
		fmt.Fprintf(sh.out, "the step did not end within %s: aborting the session\n", sh.env.StepTimeout)
		sh.endSession()
	}
}

// endSession ends the step session, if any, cleaning up after its steps.
func (sh *shell) endSession() {
	s := sh.session
	if s == nil {
		return
	}
	s.cancel()
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		fmt.Fprintln(sh.out, "the session did not end within 30s")
	}
	sh.session = nil
	sh.mark("fusevm: scenario shell end")
	fmt.Fprintln(sh.out, "step session ended")
}

// sessionEnded reports a session that ended on its own (a step failed).
func (sh *shell) sessionEnded(res interp.Result) {
	sh.session = nil
	sh.mark("fusevm: scenario shell end")
	fmt.Fprintf(sh.out, "step session ended: %s: %s\n", res.Verdict, res.Detail)
}
