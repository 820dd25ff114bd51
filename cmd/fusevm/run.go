package main

import (
	"context"
	"flag"

	"fusevm/assets"
	"fusevm/harness"
	"fusevm/kernel"
	"fusevm/plan"
	"fusevm/scenarios"
)

// variantFlags are the flags that choose one kernel variant and its
// scenarios: "fusevm run" and "fusevm shell".
type variantFlags struct {
	spec, image, modules, kernelsFile, series, picks, name, claimList, config, scen *string
}

func (f *variantFlags) register(fs *flag.FlagSet) {
	f.spec = fs.String("kernel", "debian:7.3", "kernel: a name in the kernels file, or a source: debian:X.Y[=VER], dir:PATH, git:REPO_OR_URL[@REV], tarball:PATH or tarball:URL#sha256=HEX")
	f.image = fs.String("kernel-image", "", "boot this prebuilt kernel instead of building one: a bzImage/vmlinuz path or debian:PACKAGE[=VERSION] (baseline only)")
	f.modules = fs.String("modules", "", "with --kernel-image PATH: its lib/modules/<release> directory, for FUSE, virtio console or pvpanic built as modules")
	f.kernelsFile = fs.String("kernels", "configs/kernels.toml", "kernels file, for --kernel NAME")
	f.series = fs.String("series", "", "patch series: a directory of *.patch, a series file or an mbox (default: none, the baseline)")
	f.picks = fs.String("patches", "", "apply only these patches of the series: 2, 1,2 or 1-3")
	f.name = fs.String("name", "", "variant name in reports (default: baseline, or the series version)")
	f.claimList = fs.String("claims", "", "comma-separated behaviours the series claims (default: from the series.toml above the series directory)")
	f.config = fs.String("config", "base", "config fragments joined by +: names in configs/kernel/ or paths (e.g. base+debug)")
	f.scen = fs.String("scenarios", "all", "comma-separated scenario names or .fvm paths, or all")
}

// variant makes the variant and the scenarios of the parsed flags; its
// errors exit with the code it returns.
func (f *variantFlags) variant(fs *flag.FlagSet, cache string) (*plan.Variant, []scenarios.Scenario, int, error) {
	if fs.NArg() > 0 {
		return nil, nil, exitUsage, usagef("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	ss, err := scenarios.Load(splitList(*f.scen))
	if err != nil {
		return nil, nil, exitUsage, usageError{err}
	}
	root, err := assets.Root(cache)
	if err != nil {
		return nil, nil, exitFail, err
	}
	var sel []int
	if *f.picks != "" {
		if *f.series == "" {
			return nil, nil, exitUsage, usagef("--patches needs --series")
		}
		if sel, err = kernel.ParsePicks(*f.picks); err != nil {
			return nil, nil, exitUsage, usageError{err}
		}
	}
	if *f.image != "" && isSet(fs, "kernel") {
		return nil, nil, exitUsage, usagef("give --kernel or --kernel-image, not both")
	}
	if *f.image == "" && *f.modules != "" {
		return nil, nil, exitUsage, usagef("--modules goes with --kernel-image")
	}
	k, err := plan.KernelChoice{Spec: *f.spec, Image: *f.image, Modules: *f.modules, KernelsFile: plan.ConfigFile(root, *f.kernelsFile)}.Kernel()
	if err != nil {
		return nil, nil, exitUsage, usageError{err}
	}
	if k.Prebuilt() && isSet(fs, "config") {
		return nil, nil, exitUsage, usagef("--config does not apply to a prebuilt kernel")
	}
	v, err := plan.NewVariant(root, plan.Spec{Kernel: k, Config: *f.config, Series: *f.series, Picks: sel, Name: *f.name, Claims: splitList(*f.claimList)}, ss)
	if err != nil {
		return nil, nil, exitUsage, usageError{err}
	}
	return v, ss, exitOK, nil
}

// cmdRun is "fusevm run": one kernel variant, its scenarios, a report.
func cmdRun(ctx context.Context, args []string) (int, error) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var c common
	c.register(fs)
	var vf variantFlags
	vf.register(fs)
	if err := parseArgs(fs, args); err != nil {
		return parseError(err)
	}
	v, ss, code, err := vf.variant(fs, c.cache)
	if err != nil {
		return code, err
	}
	p, o := c.start()
	defer p.Close()
	outDir, err := c.outDir()
	if err != nil {
		return exitFail, err
	}
	out := harness.New(o).Run(ctx, &plan.Plan{Variants: []*plan.Variant{v}, Scenarios: ss}, outDir)
	p.Close()
	return finish(out, outDir, ctx.Err())
}
