package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"strings"
	"time"

	"fusevm/execute"
	"fusevm/initramfs"
	"fusevm/kernel"
	"fusevm/report"
	"fusevm/scenarios"
	"fusevm/vmtest"
)

// common holds the flags shared by the commands that build and boot.
type common struct {
	cache   string
	configs string
	accel   string
	jobs    int
	verbose bool
	out     string
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.cache, "cache", kernel.DefaultCacheDir(), "cache directory (sources, builds, ccache, images)")
	fs.StringVar(&c.configs, "config", "base", "comma-separated config fragments: names in configs/kernel/ or paths")
	fs.StringVar(&c.accel, "accel", "auto", "QEMU accelerator: auto (probe KVM, else TCG), kvm or tcg")
	fs.IntVar(&c.jobs, "j", 0, "make -j for kernel builds (default: CPUs+1)")
	fs.BoolVar(&c.verbose, "v", false, "stream the serial console")
	fs.StringVar(&c.out, "out", "", "results directory (default results/<time>)")
}

// fragments resolves --config into fragment paths.
func (c *common) fragments(root string) ([]string, error) {
	var out []string
	for _, n := range strings.Split(c.configs, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		p := n
		if !strings.ContainsAny(n, "/.") {
			p = filepath.Join(root, "configs", "kernel", n+".config")
		}
		if _, err := os.Stat(p); err != nil {
			return nil, usagef("config fragment %q: %v", n, err)
		}
		if _, err := kernel.ParseFragment(p); err != nil {
			return nil, usageError{err}
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, usagef("--config: no fragments")
	}
	return out, nil
}

func (c *common) outDir() (string, error) {
	dir := c.out
	if dir == "" {
		dir = filepath.Join("results", time.Now().Format("20060102-150405"))
	}
	return dir, os.MkdirAll(dir, 0o755)
}

// variant is one kernel build to boot: a source, a series and its claims.
type variant struct {
	spec   string
	name   string // "baseline", "v2", "v2[:1]"...
	series string // path, "" for the baseline
	// prefix applies only the first prefix patches; < 0 applies all.
	prefix int
	claims []string
	known  []kernel.KnownIssue
	params map[string]string
}

// configName is "debug" when the debug fragment is in use, else "base";
// known issues are keyed by it.
func (c *common) configName() string {
	for _, n := range strings.Split(c.configs, ",") {
		if strings.Contains(filepath.Base(n), "debug") {
			return "debug"
		}
	}
	return "base"
}

// expectation is the verdict a scenario should give on v, and the reason
// of a known issue that overrides the claims, if any.
func (v *variant) expectation(c *common, s scenarios.Scenario, claims map[string]bool) (report.Verdict, report.Verdict, string) {
	for _, k := range v.known {
		if k.Scenario == s.Name && k.Config == c.configName() {
			return scenarios.Expected(s.Script, claims), report.Verdict(k.Verdict), k.Reason
		}
	}
	return scenarios.Expected(s.Script, claims), "", ""
}

// runVariant builds, boots and judges one variant. A source, apply or
// build failure yields SKIP results (not an error), so a matrix goes on.
func runVariant(ctx context.Context, c *common, v variant, ss []scenarios.Scenario, root, outDir string, p *progress) (report.Kernel, []report.Result, error) {
	kinfo := report.Kernel{Spec: v.spec, Variant: v.name, Claims: v.claims}
	claims := map[string]bool{}
	for _, cl := range v.claims {
		claims[cl] = true
	}
	skipAll := func(reason string) []report.Result {
		var rs []report.Result
		for _, s := range ss {
			r := report.Result{Kernel: v.spec, Variant: v.name, Scenario: s.Name, Verdict: report.Skip, Reason: reason}
			r.Settle(v.expectation(c, s, claims))
			rs = append(rs, r)
		}
		return rs
	}
	frags, err := c.fragments(root)
	if err != nil {
		return kinfo, nil, err
	}
	cache := &kernel.Cache{Root: c.cache}
	tree, err := kernel.Resolve(ctx, cache, v.spec, p)
	if err != nil {
		if errors.Is(err, kernel.ErrBadSpec) {
			return kinfo, nil, usageError{err}
		}
		return kinfo, nil, err
	}
	kinfo.Identity, kinfo.Version = tree.Identity, tree.Version
	var series *kernel.Series
	if v.series != "" {
		if series, err = kernel.LoadSeries(v.series); err != nil {
			return kinfo, nil, usageError{err}
		}
		if v.prefix >= 0 {
			if v.prefix > len(series.Patches) {
				return kinfo, nil, usagef("--patches %d: the series has %d patches", v.prefix, len(series.Patches))
			}
			series = series.Prefix(v.prefix)
		}
		for _, pt := range series.Patches {
			kinfo.Patches = append(kinfo.Patches, pt.Name)
		}
	}
	art, err := kernel.Build(ctx, cache, kernel.BuildSpec{Tree: tree, Series: series, Fragments: frags, Jobs: c.jobs}, p)
	if err != nil {
		if ctx.Err() != nil {
			return kinfo, nil, ctx.Err()
		}
		var ae *kernel.ApplyError
		var be *kernel.BuildError
		var ce *kernel.ConfigError
		if errors.As(err, &ae) || errors.As(err, &be) || errors.As(err, &ce) {
			kinfo.BuildError = err.Error()
			p.Printf("%s %s: SKIP: %v", v.spec, v.name, err)
			if be != nil && be.Tail != "" {
				p.Printf("last lines of the build log:\n%s", be.Tail)
			}
			return kinfo, skipAll(err.Error()), nil
		}
		return kinfo, nil, err
	}
	kinfo.Key, kinfo.Cached = art.Key, art.Cached
	if art.Cached {
		p.Printf("==> kernel %s %s: cached (%s)", tree.Version, v.name, art.Key)
	}
	img, err := initramfs.Build(ctx, root, filepath.Join(c.cache), initramfs.DefaultPrograms)
	if err != nil {
		return kinfo, nil, err
	}
	accel, err := vmtest.ParseAccel(c.accel)
	if err != nil {
		return kinfo, nil, usageError{err}
	}
	var console io.Writer
	if c.verbose {
		console = os.Stderr
	}
	p.Stage(fmt.Sprintf("boot %s %s (%d scenarios)", tree.Version, v.name, len(ss)))
	start := time.Now()
	outc, err := execute.Run(ctx, execute.Job{
		Kernel: art.BzImage, Initramfs: img, Scenarios: ss, Claims: v.claims, Params: v.params,
		OutDir: outDir, Console: console,
		VMOptions: []vmtest.Option{vmtest.WithAccel(accel), vmtest.WithProbeCache(filepath.Join(c.cache, "kvm-probe.json")), vmtest.WithWorkDir(outDir)},
	})
	if err != nil {
		return kinfo, nil, err
	}
	p.Done(fmt.Sprintf("boot %s %s under %s", tree.Version, v.name, outc.VM.Accel), time.Since(start))
	for i := range outc.Results {
		r := &outc.Results[i]
		r.Kernel, r.Variant = v.spec, v.name
		r.Settle(v.expectation(c, ss[i], claims))
	}
	return kinfo, outc.Results, nil
}

// cmdRun is "fusevm run": one kernel variant, its scenarios, a report.
func cmdRun(ctx context.Context, args []string) (int, error) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var c common
	c.register(fs)
	spec := fs.String("kernel", "debian:7.3", "kernel source: debian:X.Y[=VER], dir:PATH, git:REPO[@REV], tarball:PATH or tarball:URL#sha256=HEX")
	series := fs.String("series", "", "patch series: a directory of *.patch, a series file or an mbox (default: none, the baseline)")
	name := fs.String("name", "", "variant name in reports (default: baseline, or the series directory's name)")
	claimList := fs.String("claims", "", "comma-separated behaviours the series claims (default: from the series.toml above the series directory)")
	prefix := fs.Int("patches", -1, "apply only the first N patches of the series")
	scen := fs.String("scenarios", "all", "comma-separated scenario names or .fvm paths, or all")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, nil
		}
		return exitUsage, usageError{err}
	}
	if fs.NArg() > 0 {
		return exitUsage, usagef("run: unexpected argument %q", fs.Arg(0))
	}
	ss, err := scenarios.Load(strings.Split(*scen, ","))
	if err != nil {
		return exitUsage, usageError{err}
	}
	root, err := initramfs.ModuleRoot()
	if err != nil {
		return exitFail, err
	}
	v, err := resolveVariant(*spec, *series, *prefix, *name, *claimList)
	if err != nil {
		return exitUsage, err
	}
	outDir, err := c.outDir()
	if err != nil {
		return exitFail, err
	}
	p := newProgress(os.Stderr)
	run := &report.Run{Started: time.Now()}
	k, results, err := runVariant(ctx, &c, v, ss, root, outDir, p)
	if err != nil {
		return exitFail, err
	}
	run.Kernels = append(run.Kernels, k)
	run.Results = append(run.Results, results...)
	run.Finished = time.Now()
	if err := run.WriteJSON(filepath.Join(outDir, "results.json")); err != nil {
		return exitFail, err
	}
	run.WriteSummary(os.Stdout)
	fmt.Printf("\nresults: %s\n", outDir)
	if !run.AllAsExpected() {
		return exitFail, nil
	}
	return exitOK, nil
}

// resolveVariant fills a variant from flags; claims and known issues come
// from the series catalog when the series directory is listed in one and
// --claims is not given.
func resolveVariant(spec, series string, prefix int, name, claimList string) (variant, error) {
	v := variant{spec: spec, name: name, series: series, prefix: prefix}
	if series == "" && prefix >= 0 {
		return v, usagef("--patches needs --series")
	}
	var entry *kernel.CatalogEntry
	if series != "" {
		if path := kernel.FindCatalog(series); path != "" {
			cat, err := kernel.LoadCatalog(path)
			if err != nil {
				return v, usageError{err}
			}
			if e, ok := cat.Lookup(series); ok {
				entry = e
				v.known = cat.Version(e.Version).KnownIssues
				if e.InodeCacheFlagValue != 0 {
					v.params = map[string]string{"inode_cache_bit": fmt.Sprint(bits.TrailingZeros32(e.InodeCacheFlagValue))}
				}
			}
		}
	}
	if v.name == "" {
		switch {
		case series == "":
			v.name = "baseline"
		case entry != nil:
			v.name = entry.Version
		default:
			v.name = filepath.Base(strings.TrimSuffix(series, "/"))
		}
		if prefix >= 0 {
			v.name += fmt.Sprintf("[:%d]", prefix)
		}
	}
	if claimList != "" {
		for _, cl := range strings.Split(claimList, ",") {
			if cl = strings.TrimSpace(cl); cl != "" {
				v.claims = append(v.claims, cl)
			}
		}
	} else if entry != nil {
		v.claims = entry.Claims(prefix)
	}
	return v, nil
}
