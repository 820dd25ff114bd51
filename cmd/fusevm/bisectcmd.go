package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"fusevm/bisect"
	"fusevm/initramfs"
	"fusevm/kernel"
	"fusevm/report"
	"fusevm/scenarios"
	"fusevm/vmtest/splat"
)

// exitSkip is git bisect run's "cannot test this commit".
const exitSkip = 125

// trial runs the scenarios once on a variant (building it if needed) and
// says whether the run failed, or could not test the variant at all.
func trial(ctx context.Context, c *common, v variant, ss []scenarios.Scenario, root, outDir string, p *progress) (bisect.Run, []report.Result, error) {
	b, skips, err := prepare(ctx, c, v, ss, root, p)
	if err != nil {
		return bisect.Run{}, nil, err
	}
	if skips != nil {
		return bisect.Run{Skip: true, Detail: b.kinfo.BuildError}, skips, nil
	}
	rs, err := boot(ctx, c, b, ss, outDir, p)
	if err != nil {
		return bisect.Run{}, nil, err
	}
	run := bisect.Run{}
	var bad []string
	for _, r := range rs {
		if r.Verdict == report.Infra {
			return bisect.Run{Skip: true, Detail: "INFRA: " + r.Reason}, rs, nil
		}
		if !r.AsExpected {
			run.Failed = true
			bad = append(bad, fmt.Sprintf("%s %s (want %s)", r.Scenario, r.Verdict, r.Expected))
		}
	}
	run.Detail = strings.Join(bad, "; ")
	return run, rs, nil
}

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

// stepRecord is one line of a bisect-step log.
type stepRecord struct {
	Time    time.Time    `json:"time"`
	Commit  string       `json:"commit"`
	Subject string       `json:"subject"`
	Class   string       `json:"class"`
	Exit    int          `json:"exit"`
	Runs    []bisect.Run `json:"runs"`
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
	if err := fs.Parse(args); err != nil {
		return exitSkip, err
	}
	repoDir, rev, err := bisectRevision(*repo, *allowDirty)
	if err != nil {
		return exitSkip, err
	}
	commitOut, err := exec.Command("git", "-C", repoDir, "log", "-1", "--format=%H%x00%s", rev).Output()
	if err != nil {
		return exitSkip, fmt.Errorf("%s: no commit %s", repoDir, rev)
	}
	commit, subject, _ := strings.Cut(strings.TrimSpace(string(commitOut)), "\x00")
	ss, err := scenarios.Load(splitList(*f.scen))
	if err != nil {
		return exitSkip, err
	}
	root, err := initramfs.ModuleRoot()
	if err != nil {
		return exitSkip, err
	}
	v, err := newVariant(specKernel("git:"+repoDir+"@"+commit), *f.config, "", nil, commit[:12], splitList(*claimList))
	if err != nil {
		return exitSkip, err
	}
	outDir, err := f.outDir()
	if err != nil {
		return exitSkip, err
	}
	p := newProgress(os.Stderr)
	start := time.Now()
	n := 0
	class, runs, err := bisect.Step(ctx, f.policy(), func(ctx context.Context) (bisect.Run, error) {
		n++
		r, _, err := trial(ctx, &f.common, v, ss, root, filepath.Join(outDir, fmt.Sprintf("run%d", n)), p)
		return r, err
	})
	if err != nil {
		return exitSkip, err
	}
	code := bisect.ExitCode(class, *findFix)
	rec := stepRecord{Time: time.Now(), Commit: commit, Subject: subject, Class: class.String(), Exit: code, Runs: runs}
	if *logPath == "" {
		*logPath = filepath.Join(f.cache, "bisect", strings.TrimSuffix(filepath.Base(repoDir), ".git")+".jsonl")
	}
	if err := appendJSONLine(*logPath, rec); err != nil {
		return exitSkip, err
	}
	detail := ""
	if len(runs) > 0 {
		detail = runs[len(runs)-1].Detail
	}
	fmt.Printf("bisect-step %s %q: %s (exit %d) after %d run(s) in %s %s\nlog: %s\n", commit[:12], subject, class, code, len(runs), time.Since(start).Round(100*time.Millisecond), detail, *logPath)
	return code, nil
}

// bisectRevision finds the repository and the revision a bisect step
// tests: BISECT_HEAD under "git bisect start --no-checkout" (no work tree
// is written at all, and bare repositories work), else HEAD of a clean
// work tree.
func bisectRevision(repo string, allowDirty bool) (dir, rev string, err error) {
	gitDir, err := exec.Command("git", "-C", repo, "rev-parse", "--absolute-git-dir").Output()
	if err != nil {
		return "", "", fmt.Errorf("%s is not a git repository", repo)
	}
	abs, err := filepath.Abs(repo)
	if err != nil {
		return "", "", err
	}
	if _, err := os.Stat(filepath.Join(strings.TrimSpace(string(gitDir)), "BISECT_HEAD")); err == nil {
		return abs, "BISECT_HEAD", nil
	}
	top, err := exec.Command("git", "-C", repo, "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return "", "", fmt.Errorf("%s has no work tree: bisect it with git bisect start --no-checkout", repo)
	}
	dir = strings.TrimSpace(string(top))
	if !allowDirty {
		dirty, err := exec.Command("git", "-C", dir, "status", "--porcelain", "--untracked-files=no").Output()
		if err != nil {
			return "", "", fmt.Errorf("git status: %v", err)
		}
		if len(strings.TrimSpace(string(dirty))) > 0 {
			return "", "", fmt.Errorf("%s has uncommitted changes, which the build (of the committed HEAD) would not include: commit or stash them, or pass --allow-dirty", dir)
		}
	}
	return dir, "HEAD", nil
}

func appendJSONLine(path string, v any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	fh, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	data, _ := json.Marshal(v)
	if _, err := fh.Write(append(data, '\n')); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}

// seriesTry is one probe of "bisect series": a version, or a patch prefix
// of the bad version.
type seriesTry struct {
	Version  string            `json:"version"`
	Patches  int               `json:"patches"` // applied patches, -1 for all
	Class    string            `json:"class"`
	Detail   string            `json:"detail,omitempty"`
	Verdicts map[string]string `json:"verdicts,omitempty"`
}

// seriesReport is the outcome of "bisect series" (bisect.json).
type seriesReport struct {
	Kernel     string      `json:"kernel"`
	Versions   []string    `json:"versions"`
	Tries      []seriesTry `json:"tries"`
	BadVersion string      `json:"bad_version,omitempty"`
	Scenarios  []string    `json:"scenarios,omitempty"`
	// Culprit is the first patch that turns results unexpected (or the
	// candidates, when skips hide the boundary).
	Culprit  []string          `json:"culprit,omitempty"`
	Before   map[string]string `json:"verdicts_before,omitempty"`
	After    map[string]string `json:"verdicts_after,omitempty"`
	Excerpt  string            `json:"console_excerpt,omitempty"`
	Finished time.Time         `json:"finished"`
}

// cmdBisectSeries is "fusevm bisect series": the first version whose
// results turn unexpected, then the first patch inside it.
func cmdBisectSeries(ctx context.Context, args []string) (int, error) {
	fs := flag.NewFlagSet("bisect series", flag.ContinueOnError)
	var f bisectFlags
	f.register(fs)
	spec := fs.String("kernel", "debian:7.3", "the base kernel source")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, nil
		}
		return exitUsage, usageError{err}
	}
	if fs.NArg() == 0 {
		return exitUsage, usagef("bisect series: name the versions in order (series directories or mboxes)")
	}
	ss, err := scenarios.Load(splitList(*f.scen))
	if err != nil {
		return exitUsage, usageError{err}
	}
	root, err := initramfs.ModuleRoot()
	if err != nil {
		return exitFail, err
	}
	var versions []variant
	for _, path := range fs.Args() {
		v, err := newVariant(specKernel(*spec), *f.config, path, nil, "", nil)
		if err != nil {
			return exitUsage, err
		}
		if _, err := kernel.LoadSeries(path); err != nil {
			return exitUsage, usageError{err}
		}
		if v.entry == nil {
			return exitUsage, usagef("version %s is not listed in a series.toml, so its claims are unknown: add it to one beside the series", path)
		}
		versions = append(versions, v)
	}
	outDir, err := f.outDir()
	if err != nil {
		return exitFail, err
	}
	p := newProgress(os.Stderr)
	rep := &seriesReport{Kernel: *spec}
	for _, v := range versions {
		rep.Versions = append(rep.Versions, v.name)
	}
	// test runs one variant under the flake policy.
	last := map[string][]report.Result{}
	test := func(ctx context.Context, v variant, scen []scenarios.Scenario, key string, patches int) (bisect.Class, string, error) {
		n := 0
		class, runs, err := bisect.Step(ctx, f.policy(), func(ctx context.Context) (bisect.Run, error) {
			n++
			r, rs, err := trial(ctx, &f.common, v, scen, root, filepath.Join(outDir, key, fmt.Sprintf("run%d", n)), p)
			last[key] = rs
			return r, err
		})
		detail := ""
		if len(runs) > 0 {
			detail = runs[len(runs)-1].Detail
		}
		rep.Tries = append(rep.Tries, seriesTry{Version: v.name, Patches: patches, Class: class.String(), Detail: detail, Verdicts: verdicts(last[key])})
		p.Printf("==> %s: %s %s", key, class, detail)
		return class, detail, err
	}
	bad, _, err := bisect.FirstBadLinear(ctx, len(versions), func(ctx context.Context, i int) (bisect.Class, string, error) {
		return test(ctx, versions[i], ss, versions[i].name, -1)
	})
	if err != nil {
		return exitFail, err
	}
	if bad < 0 {
		return finishSeries(rep, outDir, exitOK)
	}
	bv := versions[bad]
	rep.BadVersion = bv.name
	var focus []scenarios.Scenario
	for _, r := range last[bv.name] {
		if !r.AsExpected {
			for _, s := range ss {
				if s.Name == r.Scenario {
					focus = append(focus, s)
					rep.Scenarios = append(rep.Scenarios, s.Name)
				}
			}
		}
	}
	series, _ := kernel.LoadSeries(bv.series)
	n := len(series.Patches)
	prefix := func(k int) variant {
		picks := make([]int, k)
		for i := range picks {
			picks[i] = i + 1
		}
		// Claims of the first k patches come from the catalog entry.
		v, _ := newVariant(specKernel(*spec), *f.config, bv.series, picks, "", nil)
		return v
	}
	if len(focus) == 0 {
		// The version could not be tested at all (skip): nothing to narrow.
		return finishSeries(rep, outDir, exitFail)
	}
	lo, hi, _, err := bisect.FirstBad(ctx, n, func(ctx context.Context, k int) (bisect.Class, string, error) {
		return test(ctx, prefix(k), focus, fmt.Sprintf("%s-first-%d", bv.name, k), k)
	})
	if err != nil {
		return exitFail, err
	}
	for k := lo; k <= hi; k++ {
		rep.Culprit = append(rep.Culprit, series.Patches[k-1].Name)
	}
	if lo == hi {
		afterKey := fmt.Sprintf("%s-first-%d", bv.name, lo)
		if lo == n {
			afterKey = bv.name
		}
		rep.After = verdicts(last[afterKey])
		if lo > 1 {
			rep.Before = verdicts(last[fmt.Sprintf("%s-first-%d", bv.name, lo-1)])
		} else {
			rep.Before = map[string]string{"": "the base without the series (assumed good)"}
		}
		rep.Excerpt = excerpt(last[afterKey], rep.Scenarios)
	}
	return finishSeries(rep, outDir, exitFail)
}

func verdicts(rs []report.Result) map[string]string {
	if len(rs) == 0 {
		return nil
	}
	m := map[string]string{}
	for _, r := range rs {
		m[r.Scenario] = r.Cell()
	}
	return m
}

// excerpt is the splat, or the last console lines of the first failing
// scenario.
func excerpt(rs []report.Result, names []string) string {
	for _, r := range rs {
		if r.AsExpected {
			continue
		}
		if r.SplatText != "" {
			return r.SplatText
		}
		console, err := os.ReadFile(r.ConsoleLog)
		if err != nil {
			return r.Reason
		}
		lines := splat.Section(console, r.Scenario)
		if len(lines) > 20 {
			lines = lines[len(lines)-20:]
		}
		return r.Reason + "\n" + strings.Join(lines, "\n")
	}
	return ""
}

func finishSeries(rep *seriesReport, outDir string, code int) (int, error) {
	rep.Finished = time.Now()
	data, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(filepath.Join(outDir, "bisect.json"), append(data, '\n'), 0o644); err != nil {
		return exitFail, err
	}
	if err := writeFile(filepath.Join(outDir, "bisect.txt"), rep.writeText); err != nil {
		return exitFail, err
	}
	rep.writeText(os.Stdout)
	fmt.Printf("\nreport: %s\n", filepath.Join(outDir, "bisect.txt"))
	return code, nil
}

func (rep *seriesReport) writeText(w io.Writer) error {
	fmt.Fprintf(w, "bisect series on %s: %s\n\nsteps:\n", rep.Kernel, strings.Join(rep.Versions, " "))
	for _, t := range rep.Tries {
		what := t.Version
		if t.Patches >= 0 {
			what = fmt.Sprintf("%s, first %d patch(es)", t.Version, t.Patches)
		}
		fmt.Fprintf(w, "  %-28s %-5s %s\n", what, t.Class, t.Detail)
	}
	switch {
	case rep.BadVersion == "":
		fmt.Fprintln(w, "\nno version turns an expected result unexpected")
	case len(rep.Culprit) == 0:
		fmt.Fprintf(w, "\nfirst bad version: %s (could not be narrowed to a patch)\n", rep.BadVersion)
	case len(rep.Culprit) > 1:
		fmt.Fprintf(w, "\nfirst bad version: %s; skipped steps hide the boundary: the culprit is one of %s\n", rep.BadVersion, strings.Join(rep.Culprit, ", "))
	default:
		fmt.Fprintf(w, "\nfirst bad version: %s\nfirst bad patch:   %s\nscenarios:         %s\n", rep.BadVersion, rep.Culprit[0], strings.Join(rep.Scenarios, ", "))
		for _, s := range rep.Scenarios {
			fmt.Fprintf(w, "  %s: before %s, after %s\n", s, orDefault(rep.Before[s], rep.Before[""]), rep.After[s])
		}
		fmt.Fprintf(w, "console excerpt:\n%s\n", indent(rep.Excerpt))
	}
	return nil
}

func orDefault(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ")
}
