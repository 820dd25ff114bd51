package main

import (
	"context"
	"flag"
	"os"
	"strings"

	"fusevm/assets"
	"fusevm/harness"
	"fusevm/kernel"
	"fusevm/plan"
	"fusevm/scenarios"
)

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
		return parseError(err)
	}
	if fs.NArg() > 0 {
		return exitUsage, usagef("run: unexpected argument %q", fs.Arg(0))
	}
	ss, err := scenarios.Load(splitList(*scen))
	if err != nil {
		return exitUsage, usageError{err}
	}
	root, err := assets.Root(c.cache)
	if err != nil {
		return exitFail, err
	}
	var sel []int
	if *picks != "" {
		if *series == "" {
			return exitUsage, usagef("--patches needs --series")
		}
		if sel, err = kernel.ParsePicks(*picks); err != nil {
			return exitUsage, usageError{err}
		}
	}
	k, err := runKernel(root, *kernelsFile, *spec, *image, *modules, fs)
	if err != nil {
		return exitUsage, err
	}
	if k.Prebuilt() && isSet(fs, "config") {
		return exitUsage, usagef("--config does not apply to a prebuilt kernel")
	}
	v, err := plan.NewVariant(root, plan.Spec{Kernel: k, Config: *config, Series: *series, Picks: sel, Name: *name, Claims: splitList(*claimList)}, ss)
	if err != nil {
		return exitUsage, usageError{err}
	}
	p := newProgress(os.Stderr)
	o, err := c.options(p)
	if err != nil {
		return exitUsage, err
	}
	outDir, err := c.outDir()
	if err != nil {
		return exitFail, err
	}
	out := harness.New(o).Run(ctx, &plan.Plan{Variants: []*plan.Variant{v}, Scenarios: ss}, outDir)
	return finish(out, outDir, ctx.Err())
}

// runKernel picks the kernel of "fusevm run": a prebuilt image, a name in
// the kernels file, or a source spec.
func runKernel(root, kernelsFile, spec, image, modules string, fs *flag.FlagSet) (plan.Kernel, error) {
	if image != "" {
		if isSet(fs, "kernel") {
			return plan.Kernel{}, usagef("give --kernel or --kernel-image, not both")
		}
		return plan.Kernel{Name: image, Image: image, Modules: modules}, nil
	}
	if modules != "" {
		return plan.Kernel{}, usagef("--modules goes with --kernel-image")
	}
	if strings.Contains(spec, ":") {
		return plan.Kernel{Name: spec, Spec: spec}, nil
	}
	all, err := plan.LoadKernels(rootPath(root, kernelsFile))
	if err != nil {
		return plan.Kernel{}, usageError{err}
	}
	ks, err := plan.PickKernels(all, []string{spec})
	if err != nil {
		return plan.Kernel{}, usageError{err}
	}
	return ks[0], nil
}
