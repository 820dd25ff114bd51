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
	"strconv"
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
	accel   string
	jobs    int
	verbose bool
	out     string
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.cache, "cache", kernel.DefaultCacheDir(), "cache directory (sources, builds, ccache, images)")
	fs.StringVar(&c.accel, "accel", "auto", "QEMU accelerator: auto (probe KVM, else TCG), kvm or tcg")
	fs.IntVar(&c.jobs, "make-j", 0, "make -j for kernel builds (default: CPUs+1)")
	fs.BoolVar(&c.verbose, "v", false, "stream the serial console")
	fs.StringVar(&c.out, "out", "", "results directory (default results/<time>)")
}

func (c *common) outDir() (string, error) {
	dir := c.out
	if dir == "" {
		dir = filepath.Join("results", time.Now().Format("20060102-150405"))
	}
	return dir, os.MkdirAll(dir, 0o755)
}

// fragments resolves a config name ("base", "base+debug", or paths joined
// by "+") into fragment paths.
func fragments(root, config string) ([]string, error) {
	var out []string
	for _, n := range strings.Split(config, "+") {
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
		return nil, usagef("config %q names no fragments", config)
	}
	return out, nil
}

// variant is one kernel to boot: a source to build with a config, a series
// selection and its claims, or a prebuilt image.
type variant struct {
	kernel kernelEntry
	config string // "base", "base+debug"; "" for an image
	name   string // "baseline", "v2", "v2[2]"...
	series string // path, "" for the baseline
	picks  []int  // 1-based patch numbers; nil applies all
	claims []string
	known  []kernel.KnownIssue
	params map[string]string
	// entry is the series catalog entry, nil when the series is in none.
	entry *kernel.CatalogEntry
}

// label is the variant's column in reports.
func (v *variant) label() string {
	if v.config == "base" || v.config == "" {
		return v.name
	}
	return v.name + " (" + v.config + ")"
}

// configName is the name known issues are keyed by: "debug" when the debug
// fragment is in use, else "base".
func (v *variant) configName() string {
	if strings.Contains(v.config, "debug") {
		return "debug"
	}
	return "base"
}

// settle fills a result's expectation: from the scenario's needs and the
// claims, overridden by a known issue.
func (v *variant) settle(r *report.Result, s scenarios.Scenario) {
	claims := map[string]bool{}
	for _, c := range v.claims {
		claims[c] = true
	}
	r.Kernel, r.Variant, r.Config = v.kernel.Name, v.name, v.config
	for _, k := range v.known {
		if k.Scenario == s.Name && k.Config == v.configName() {
			r.Settle(scenarios.Expected(s.Script, claims), report.Verdict(k.Verdict), k.Reason)
			return
		}
	}
	r.Settle(scenarios.Expected(s.Script, claims), "", "")
}

// settleBoot fills the expectation of a result that is not a scenario's
// (execute.BootScenario): no kernel report is ever expected there.
func (v *variant) settleBoot(r *report.Result) {
	r.Kernel, r.Variant, r.Config = v.kernel.Name, v.name, v.config
	r.Settle(report.Pass, "", "")
}

// specKernel is the kernel entry of a source spec given on the command line.
func specKernel(spec string) kernelEntry { return kernelEntry{Name: spec, Spec: spec} }

// newVariant fills a variant; claims and known issues come from the
// series catalog when the series directory is listed in one and claims is
// empty. A prebuilt kernel takes no series and no config.
func newVariant(k kernelEntry, config, series string, picks []int, name string, claims []string) (variant, error) {
	v := variant{kernel: k, config: config, name: name, series: series, picks: picks, claims: claims}
	if series == "" && picks != nil {
		return v, usagef("--patches needs --series")
	}
	if k.prebuilt() {
		if series != "" {
			return v, usagef("kernel %s is prebuilt: it cannot take a patch series", k.Name)
		}
		v.config = ""
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
				v.entry = e
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
		if picks != nil {
			v.name += strings.ReplaceAll(fmt.Sprint(picks), " ", ",")
		}
	}
	if v.claims == nil && entry != nil {
		v.claims = entry.Claims(picks)
	}
	return v, nil
}

// built is a variant whose kernel and guest image are ready to boot.
type built struct {
	v         variant
	kinfo     report.Kernel
	kernel    string
	vmlinux   string // "" for a prebuilt kernel
	initramfs string
	boot      bootSettings
}

// bootSettings come from the X.boot file beside each X.config fragment.
type bootSettings struct {
	cmdline []string // extra kernel arguments
	cpus    int      // vCPUs, 0 for the default
}

// fragmentBoot reads the "cmdline:" and "cpus:" lines of the X.boot files
// beside the fragments.
func fragmentBoot(frags []string) (bootSettings, error) {
	var b bootSettings
	for _, f := range frags {
		path := strings.TrimSuffix(f, ".config") + ".boot"
		data, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return b, err
		}
		for i, line := range strings.Split(string(data), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, v, _ := strings.Cut(line, ":")
			switch strings.TrimSpace(k) {
			case "cmdline":
				b.cmdline = append(b.cmdline, strings.Fields(v)...)
			case "cpus":
				if b.cpus, err = strconv.Atoi(strings.TrimSpace(v)); err != nil || b.cpus < 1 {
					return b, usagef("%s:%d: cpus wants a positive number", path, i+1)
				}
			default:
				return b, usagef("%s:%d: unknown key %q (want cmdline or cpus)", path, i+1, k)
			}
		}
	}
	return b, nil
}

// prepare resolves the source, loads the series and builds the kernel and
// the guest image. An apply, config or build failure is no error: it
// returns SKIP results for every scenario instead, so a matrix goes on.
func prepare(ctx context.Context, c *common, v variant, ss []scenarios.Scenario, root string, p *progress) (*built, []report.Result, error) {
	if v.kernel.prebuilt() {
		b, err := preparePrebuilt(ctx, c, v, root, p)
		return b, nil, err
	}
	b := &built{v: v, kinfo: report.Kernel{Name: v.kernel.Name, Spec: v.kernel.Spec, Variant: v.name, Config: v.config, Claims: v.claims}}
	frags, err := fragments(root, v.config)
	if err != nil {
		return nil, nil, err
	}
	if b.boot, err = fragmentBoot(frags); err != nil {
		return nil, nil, err
	}
	cache := &kernel.Cache{Root: c.cache}
	tree, err := kernel.Resolve(ctx, cache, v.kernel.Spec, p)
	if err != nil {
		return nil, nil, specError(err)
	}
	b.kinfo.Identity, b.kinfo.Version = tree.Identity, tree.Version
	var series *kernel.Series
	if v.series != "" {
		if series, err = kernel.LoadSeries(v.series); err != nil {
			return nil, nil, usageError{err}
		}
		if v.picks != nil {
			if series, err = series.Select(v.picks); err != nil {
				return nil, nil, usageError{err}
			}
		}
		for _, pt := range series.Patches {
			b.kinfo.Patches = append(b.kinfo.Patches, pt.Name)
		}
	}
	art, err := kernel.Build(ctx, cache, kernel.BuildSpec{Tree: tree, Series: series, Fragments: frags, Jobs: c.jobs}, p)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		var ae *kernel.ApplyError
		var be *kernel.BuildError
		var ce *kernel.ConfigError
		if !errors.As(err, &ae) && !errors.As(err, &be) && !errors.As(err, &ce) {
			return nil, nil, err
		}
		b.kinfo.BuildError = err.Error()
		p.Printf("%s %s: SKIP: %v", v.kernel.Name, v.label(), err)
		if be != nil && be.Tail != "" {
			p.Printf("last lines of the build log:\n%s", be.Tail)
		}
		var rs []report.Result
		for _, s := range ss {
			r := report.Result{Scenario: s.Name, Verdict: report.Skip, Reason: err.Error()}
			v.settle(&r, s)
			rs = append(rs, r)
		}
		return b, rs, nil
	}
	b.kinfo.Key, b.kinfo.Cached = art.Key, art.Cached
	if art.Cached {
		p.Printf("==> kernel %s %s: cached (%s)", tree.Version, v.label(), art.Key)
	}
	b.kernel, b.vmlinux = art.BzImage, art.Vmlinux
	if b.initramfs, err = initramfs.Build(ctx, root, c.cache, initramfs.DefaultPrograms, nil); err != nil {
		return nil, nil, err
	}
	return b, nil, nil
}

// specError makes a kernel or image specification the user got wrong a
// usage error; other resolution failures stay as they are.
func specError(err error) error {
	if errors.Is(err, kernel.ErrBadSpec) {
		return usageError{err}
	}
	return err
}

// preparePrebuilt resolves a prebuilt kernel image and builds a guest
// image carrying the modules it needs that are not built in.
func preparePrebuilt(ctx context.Context, c *common, v variant, root string, p *progress) (*built, error) {
	b := &built{v: v, kinfo: report.Kernel{Name: v.kernel.Name, Spec: v.kernel.Image, Prebuilt: true, Variant: v.name, Claims: v.claims}}
	img, err := kernel.ResolveImage(ctx, &kernel.Cache{Root: c.cache}, v.kernel.Image, v.kernel.Modules, p)
	if err != nil {
		return nil, specError(err)
	}
	b.kinfo.Identity, b.kinfo.Version = img.Identity, img.Release
	mods, err := kernel.ModulesToLoad(ctx, img.ModulesDir, kernel.GuestNeeds)
	if err != nil {
		return nil, err
	}
	p.Printf("==> kernel %s: prebuilt %s, %d modules to load", v.kernel.Name, img.Release, len(mods))
	b.kernel = img.BzImage
	// One vCPU: a distribution kernel patches its own text at run time
	// (static keys, e.g. when the clocksource switches to the TSC), and
	// under multi-threaded TCG another vCPU can still execute the int3 of
	// a patch that has just completed: Debian's 7.3 image oopsed so in
	// ktime_get_update_offsets_now in about one boot in 17 with two vCPUs.
	// Our own minimal kernels have no jump labels and keep two.
	b.boot.cpus = 1
	if b.initramfs, err = initramfs.Build(ctx, root, c.cache, initramfs.DefaultPrograms, mods); err != nil {
		return nil, err
	}
	return b, nil
}

// boot runs scenarios in one VM of a built variant and settles each
// result's expectation.
func boot(ctx context.Context, c *common, b *built, ss []scenarios.Scenario, outDir string, p *progress) ([]report.Result, error) {
	accel, err := vmtest.ParseAccel(c.accel)
	if err != nil {
		return nil, usageError{err}
	}
	var console io.Writer
	if c.verbose {
		console = os.Stderr
	}
	what := fmt.Sprintf("boot %s %s (%d scenarios)", b.kinfo.Version, b.v.label(), len(ss))
	p.Stage(what)
	start := time.Now()
	opts := []vmtest.Option{vmtest.WithAccel(accel), vmtest.WithProbeCache(filepath.Join(c.cache, "kvm-probe.json")), vmtest.WithWorkDir(outDir), vmtest.WithAppend(b.boot.cmdline...)}
	if b.boot.cpus > 0 {
		opts = append(opts, vmtest.WithCPUs(b.boot.cpus))
	}
	outc, err := execute.Run(ctx, execute.Job{
		Kernel: b.kernel, Vmlinux: b.vmlinux, Initramfs: b.initramfs, Scenarios: ss, Claims: b.v.claims, Params: b.v.params,
		OutDir: outDir, Console: console,
		VMOptions: opts,
	})
	if err != nil {
		return nil, err
	}
	if len(outc.VMs) > 1 {
		what += fmt.Sprintf(", %d VMs", len(outc.VMs))
	}
	p.Done(fmt.Sprintf("%s under %s", what, outc.VMs[0].Accel), time.Since(start))
	for i := range outc.Results {
		b.v.settle(&outc.Results[i], ss[i])
	}
	for i := range outc.Boot {
		b.v.settleBoot(&outc.Boot[i])
	}
	return append(outc.Results, outc.Boot...), nil
}

// finish writes results.json, junit.xml and summary.md, prints the
// summary and returns the exit code.
func finish(run *report.Run, outDir string) (int, error) {
	run.Finished = time.Now()
	if err := run.WriteJSON(filepath.Join(outDir, "results.json")); err != nil {
		return exitFail, err
	}
	if err := writeFile(filepath.Join(outDir, "junit.xml"), run.WriteJUnit); err != nil {
		return exitFail, err
	}
	if err := writeFile(filepath.Join(outDir, "summary.md"), run.WriteMarkdown); err != nil {
		return exitFail, err
	}
	run.WriteSummary(os.Stdout)
	fmt.Printf("\nresults: %s\n", outDir)
	if !run.AllAsExpected() {
		return exitFail, nil
	}
	return exitOK, nil
}

func writeFile(path string, fn func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := fn(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// cmdRun is "fusevm run": one kernel variant, its scenarios, a report.
func cmdRun(ctx context.Context, args []string) (int, error) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var c common
	c.register(fs)
	spec := fs.String("kernel", "debian:7.3", "kernel: a name in the kernels file, or a source: debian:X.Y[=VER], dir:PATH, git:REPO_OR_URL[@REV], tarball:PATH or tarball:URL#sha256=HEX")
	image := fs.String("kernel-image", "", "boot this prebuilt kernel instead of building one: a bzImage/vmlinuz path or debian:PACKAGE[=VERSION] (baseline only)")
	modules := fs.String("modules", "", "with --kernel-image PATH: its lib/modules/<release> directory, for FUSE, virtio console or pvpanic built as modules")
	kernelsFile := fs.String("kernels", "configs/kernels.toml", "kernels file, for --kernel NAME")
	series := fs.String("series", "", "patch series: a directory of *.patch, a series file or an mbox (default: none, the baseline)")
	picks := fs.String("patches", "", "apply only these patches of the series: 2, 1,2 or 1-3")
	name := fs.String("name", "", "variant name in reports (default: baseline, or the series version)")
	claimList := fs.String("claims", "", "comma-separated behaviours the series claims (default: from the series.toml above the series directory)")
	config := fs.String("config", "base", "config fragments joined by +: names in configs/kernel/ or paths (e.g. base+debug)")
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
	ss, err := scenarios.Load(splitList(*scen))
	if err != nil {
		return exitUsage, usageError{err}
	}
	root, err := initramfs.ModuleRoot()
	if err != nil {
		return exitFail, err
	}
	var sel []int
	if *picks != "" {
		if sel, err = kernel.ParsePicks(*picks); err != nil {
			return exitUsage, usageError{err}
		}
	}
	k, err := runKernel(root, *kernelsFile, *spec, *image, *modules, fs)
	if err != nil {
		return exitUsage, err
	}
	if k.prebuilt() && isSet(fs, "config") {
		return exitUsage, usagef("--config does not apply to a prebuilt kernel")
	}
	v, err := newVariant(k, *config, *series, sel, *name, splitList(*claimList))
	if err != nil {
		return exitUsage, err
	}
	outDir, err := c.outDir()
	if err != nil {
		return exitFail, err
	}
	p := newProgress(os.Stderr)
	run := &report.Run{Started: time.Now()}
	b, results, err := prepare(ctx, &c, v, ss, root, p)
	if err != nil {
		return exitFail, err
	}
	if results == nil {
		if results, err = boot(ctx, &c, b, ss, outDir, p); err != nil {
			return exitFail, err
		}
	}
	run.Kernels = append(run.Kernels, b.kinfo)
	run.Results = append(run.Results, results...)
	return finish(run, outDir)
}

// runKernel picks the kernel of "fusevm run": a prebuilt image, a name in
// the kernels file, or a source spec.
func runKernel(root, kernelsFile, spec, image, modules string, fs *flag.FlagSet) (kernelEntry, error) {
	if image != "" {
		if isSet(fs, "kernel") {
			return kernelEntry{}, usagef("give --kernel or --kernel-image, not both")
		}
		return kernelEntry{Name: image, Image: image, Modules: modules}, nil
	}
	if modules != "" {
		return kernelEntry{}, usagef("--modules goes with --kernel-image")
	}
	if strings.Contains(spec, ":") {
		return specKernel(spec), nil
	}
	all, err := loadKernels(rootPath(root, kernelsFile))
	if err != nil {
		return kernelEntry{}, err
	}
	ks, err := pickKernels(all, []string{spec})
	if err != nil {
		return kernelEntry{}, err
	}
	return ks[0], nil
}

// isSet reports whether the flag name was given on the command line.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// rootPath resolves a relative path against the working directory when it
// exists there, else against the fusevm source tree.
func rootPath(root, path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	if _, err := os.Stat(path); err == nil {
		return path
	}
	return filepath.Join(root, path)
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
