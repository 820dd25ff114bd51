package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"fusevm/assets"
	"fusevm/bisect"
	"fusevm/harness"
	"fusevm/plan"
	"fusevm/scenarios"
)

// exitSkip is git bisect run's "cannot test this commit".
const exitSkip = 125

// bisectFlags are the flags both bisection modes share.
type bisectFlags struct {
	common
	scen    *string
	config  *string
	runs    *int
	confirm *int
}

func (f *bisectFlags) register(fs *flag.FlagSet) {
	f.common.register(fs)
	f.scen = fs.String("scenarios", "all", "comma-separated scenario names or .fvm paths, or all")
	f.config = fs.String("config", "base", "config fragments joined by + (e.g. base+debug)")
	f.runs = fs.Int("runs", 1, "runs of the scenarios per step")
	f.confirm = fs.Int("confirm", 2, "extra runs when a step's runs saw a failure, before calling it bad (flake policy)")
}

func (f *bisectFlags) policy() bisect.Policy {
	return bisect.Policy{Runs: *f.runs, Confirm: *f.confirm}
}

// cmdBisectStep is "fusevm bisect-step", for `git bisect run`: it builds
// the repository's HEAD, runs the scenarios under the flake policy and exits
// 0 (good), 1 (bad) or 125 (skip). Every error, bad flags included, exits
// 125: anything else would mark the commit bad, and above 127 git aborts.
func cmdBisectStep(ctx context.Context, args []string) int {
	code, err := bisectStep(ctx, args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fusevm bisect-step:", err)
		return exitSkip
	}
	return code
}

func bisectStep(ctx context.Context, args []string) (int, error) {
	fs := flag.NewFlagSet("bisect-step", flag.ContinueOnError)
	var f bisectFlags
	f.register(fs)
	repo := fs.String("repo", ".", "the kernel git repository being bisected (only read)")
	claimList := fs.String("claims", "", "behaviours the kernel claims at the commits under test (scenario expectations follow)")
	findFix := fs.Bool("find-fix", false, "look for the commit that fixed the scenarios: good and bad swap (use with git bisect --term-old/--term-new)")
	allowDirty := fs.Bool("allow-dirty", false, "test HEAD even though the work tree has uncommitted changes (they are not tested)")
	logPath := fs.String("log", "", "append each step to this JSON-lines file (default: <cache>/bisect/<repo>.jsonl)")
	if err := parseArgs(fs, args); err != nil {
		return exitSkip, err
	}
	commit, err := bisect.Revision(ctx, *repo, *allowDirty)
	if err != nil {
		return exitSkip, err
	}
	ss, err := scenarios.Load(splitList(*f.scen))
	if err != nil {
		return exitSkip, err
	}
	root, err := assets.Root(f.cache)
	if err != nil {
		return exitSkip, err
	}
	v, err := plan.NewVariant(root, plan.Spec{Kernel: plan.Kernel{Name: commit.Spec(), Spec: commit.Spec()}, Config: *f.config, Name: commit.Short(), Claims: splitList(*claimList)}, ss)
	if err != nil {
		return exitSkip, err
	}
	p, o := f.start()
	defer p.Close()
	outDir, err := f.outDir()
	if err != nil {
		return exitSkip, err
	}
	if *logPath == "" {
		*logPath = bisect.DefaultLog(f.cache, commit)
	}
	step := &bisect.CommitStep{Commit: commit, Policy: f.policy(), FindFix: *findFix, Log: *logPath, Test: harness.New(o).StepRuns(v, ss, outDir)}
	res, err := step.Run(ctx)
	p.Close()
	if err != nil {
		return exitSkip, err
	}
	fmt.Printf("%s\nlog: %s\n", res, res.Log)
	return res.Record.Exit, nil
}

// cmdBisectSeries is "fusevm bisect series": the first version whose
// results turn unexpected, then the first patch inside it.
func cmdBisectSeries(ctx context.Context, args []string) (int, error) {
	fs := flag.NewFlagSet("bisect series", flag.ContinueOnError)
	var f bisectFlags
	f.register(fs)
	spec := fs.String("kernel", "debian:7.3", "the base kernel source")
	var claims listFlag
	fs.Var(&claims, "claims", "claims of a version in no series.toml: VERSION=CLAIM,... (the whole version), VERSION:N=CLAIM,... (its patch N), or CLAIM,... for the only such version; repeatable")
	if err := parseArgs(fs, args); err != nil {
		return parseError(err)
	}
	if fs.NArg() == 0 {
		return exitUsage, usagef("bisect series: name the versions in order (series directories or mboxes)")
	}
	vc, err := plan.ParseVersionClaims(claims)
	if err != nil {
		return exitUsage, usageError{err}
	}
	ss, err := scenarios.Load(splitList(*f.scen))
	if err != nil {
		return exitUsage, usageError{err}
	}
	root, err := assets.Root(f.cache)
	if err != nil {
		return exitFail, err
	}
	variants, err := plan.SeriesVersions(root, plan.Kernel{Name: *spec, Spec: *spec}, *f.config, fs.Args(), vc, ss)
	if err != nil {
		return exitUsage, usageError{err}
	}
	p, o := f.start()
	defer p.Close()
	outDir, err := f.outDir()
	if err != nil {
		return exitFail, err
	}
	tester := &harness.SeriesTester{Harness: harness.New(o), Versions: variants, Scenarios: ss, Dir: outDir}
	search := tester.Search(f.policy(), *spec)
	search.Tried = func(t bisect.SeriesTry) { p.Printf("==> %s: %s %s", t, t.Class, t.Detail) }
	rep, err := search.Run(ctx)
	p.Close()
	txt, werr := rep.WriteFiles(outDir)
	if werr == nil {
		werr = rep.WriteText(os.Stdout)
	}
	if werr != nil {
		return exitFail, errors.Join(err, werr)
	}
	fmt.Printf("\nreport: %s\n", txt)
	if err != nil || rep.BadVersion != "" {
		return exitFail, err
	}
	return exitOK, nil
}
