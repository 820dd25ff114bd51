package bisect

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"fusevm/report"
)

// Spec is the kernel source of the commit, as kernel.Resolve takes it:
// "git:REPO@HASH".
func (c Commit) Spec() string { return "git:" + c.Repo + "@" + c.Hash }

// Short is the commit's hash cut to 12 digits, the name of its variant in
// reports.
func (c Commit) Short() string { return c.Hash[:12] }

// DefaultLog is the log a step on commit c appends to unless told
// otherwise: <cache>/bisect/<repository>.jsonl, the repository named by
// its directory without ".git".
func DefaultLog(cache string, c Commit) string {
	return filepath.Join(cache, "bisect", strings.TrimSuffix(filepath.Base(c.Repo), ".git")+".jsonl")
}

// CommitStep is one step of git bisect run: the scenarios run on Commit
// under Policy, the commit is classified, and the step is appended to
// Log.
type CommitStep struct {
	Commit Commit
	Policy Policy
	// FindFix swaps good and bad in the exit code (see ExitCode).
	FindFix bool
	// Log is the JSON-lines file the step is appended to (AppendLog).
	Log string
	// Test runs the scenarios once and returns their results.
	Test func(context.Context) ([]report.Result, error)
}

// StepResult is a finished CommitStep.
type StepResult struct {
	// Record is the line the step appended to Log; Record.Exit is the
	// exit code for git bisect run.
	Record StepRecord
	// Took is how long the step took.
	Took time.Duration
	// Log is the file Record went to.
	Log string
}

// Run runs s.Test under the policy, judging each run's results (Judge),
// classifies the commit and appends the step to s.Log.
func (s *CommitStep) Run(ctx context.Context) (*StepResult, error) {
	start := time.Now()
	class, runs, err := Step(ctx, s.Policy, func(ctx context.Context) (Run, error) {
		rs, err := s.Test(ctx)
		if err != nil {
			return Run{}, err
		}
		return Judge(rs), nil
	})
	if err != nil {
		return nil, err
	}
	rec := StepRecord{Time: time.Now(), Commit: s.Commit.Hash, Subject: s.Commit.Subject, Class: class.String(), Exit: ExitCode(class, s.FindFix), Runs: runs}
	if err := AppendLog(s.Log, rec); err != nil {
		return nil, err
	}
	return &StepResult{Record: rec, Took: time.Since(start), Log: s.Log}, nil
}

// String is the step in one line: the commit, its class and exit code,
// the runs it took and the detail of the last one:
// `bisect-step 0123456789ab "fuse: x": bad (exit 1) after 3 run(s) in 1m2.3s stale-id FAIL (want PASS)`.
func (r *StepResult) String() string {
	detail := ""
	if len(r.Record.Runs) > 0 {
		detail = r.Record.Runs[len(r.Record.Runs)-1].Detail
	}
	return fmt.Sprintf("bisect-step %s %q: %s (exit %d) after %d run(s) in %s %s", r.Record.Commit[:12], r.Record.Subject, r.Record.Class, r.Record.Exit, len(r.Record.Runs), r.Took.Round(100*time.Millisecond), detail)
}
