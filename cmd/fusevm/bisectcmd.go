package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

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
	spec := "git:" + commit.Repo + "@" + commit.Hash
	v, err := plan.NewVariant(root, plan.Spec{Kernel: plan.Kernel{Name: spec, Spec: spec}, Config: *f.config, Name: commit.Hash[:12], Claims: splitList(*claimList)}, ss)
	if err != nil {
		return exitSkip, err
	}
	p, o := f.start()
	defer p.Close()
	h := harness.New(o)
	outDir, err := f.outDir()
	if err != nil {
		return exitSkip, err
	}
	start := time.Now()
	n := 0
	class, runs, err := bisect.Step(ctx, f.policy(), func(ctx context.Context) (bisect.Run, error) {
		n++
		out := h.Run(ctx, &plan.Plan{Variants: []*plan.Variant{v}, Scenarios: ss}, filepath.Join(outDir, fmt.Sprintf("run%d", n)))
		return bisect.Judge(out.Run.Results), nil
	})
	p.Close()
	if err != nil {
		return exitSkip, err
	}
	code := bisect.ExitCode(class, *findFix)
	if *logPath == "" {
		*logPath = filepath.Join(f.cache, "bisect", strings.TrimSuffix(filepath.Base(commit.Repo), ".git")+".jsonl")
	}
	rec := bisect.StepRecord{Time: time.Now(), Commit: commit.Hash, Subject: commit.Subject, Class: class.String(), Exit: code, Runs: runs}
	if err := bisect.AppendLog(*logPath, rec); err != nil {
		return exitSkip, err
	}
	detail := ""
	if len(runs) > 0 {
		detail = runs[len(runs)-1].Detail
	}
	fmt.Printf("bisect-step %s %q: %s (exit %d) after %d run(s) in %s %s\nlog: %s\n", commit.Hash[:12], commit.Subject, class, code, len(runs), time.Since(start).Round(100*time.Millisecond), detail, *logPath)
	return code, nil
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
	var versions []bisect.Version
	for _, v := range variants {
		bv := bisect.Version{Name: v.Name}
		for _, pt := range v.Series.Patches {
			bv.Patches = append(bv.Patches, pt.Name)
		}
		versions = append(versions, bv)
	}
	p, o := f.start()
	defer p.Close()
	outDir, err := f.outDir()
	if err != nil {
		return exitFail, err
	}
	search := &bisect.SeriesSearch{
		Policy:   f.policy(),
		Kernel:   *spec,
		Versions: versions,
		Tester:   &harness.SeriesTester{Harness: harness.New(o), Versions: variants, Scenarios: ss, Dir: outDir},
		Tried:    func(t bisect.SeriesTry) { p.Printf("==> %s: %s %s", t, t.Class, t.Detail) },
	}
	rep, err := search.Run(ctx)
	p.Close()
	if werr := writeSeriesReport(rep, outDir); werr != nil {
		return exitFail, errors.Join(err, werr)
	}
	if err != nil || rep.BadVersion != "" {
		return exitFail, err
	}
	return exitOK, nil
}

// writeSeriesReport writes bisect.json and bisect.txt, and prints the text.
func writeSeriesReport(rep *bisect.SeriesReport, outDir string) error {
	rep.Finished = time.Now()
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("bisect.json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(outDir, "bisect.json"), append(data, '\n'), 0o644); err != nil {
		return err
	}
	txt := filepath.Join(outDir, "bisect.txt")
	fh, err := os.Create(txt)
	if err != nil {
		return err
	}
	if err := errors.Join(rep.WriteText(fh), fh.Close()); err != nil {
		return fmt.Errorf("%s: %w", txt, err)
	}
	if err := rep.WriteText(os.Stdout); err != nil {
		return err
	}
	fmt.Printf("\nreport: %s\n", txt)
	return nil
}
