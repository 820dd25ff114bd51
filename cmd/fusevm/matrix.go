package main

import (
	"context"
	"flag"

	"fusevm/assets"
	"fusevm/harness"
	"fusevm/plan"
)

// cmdMatrix is "fusevm matrix": kernels x variants x configs x scenarios.
func cmdMatrix(ctx context.Context, args []string) (int, error) {
	fs := flag.NewFlagSet("matrix", flag.ContinueOnError)
	var c common
	c.register(fs)
	file := fs.String("file", "configs/matrix.toml", "matrix file")
	kernelsFile := fs.String("kernels", "configs/kernels.toml", "kernels file: the names --kernel and the matrix use")
	kernelNames := fs.String("kernel", "", "override the matrix's kernels: comma-separated names from the kernels file, or all")
	configs := fs.String("configs", "", "override the matrix's config sets, comma-separated (e.g. base,base+debug)")
	scen := fs.String("scenarios", "", "override the matrix's scenarios, comma-separated")
	jobs := fs.Int("j", 2, "VMs to run in parallel")
	count := fs.Int("count", 1, "run every scenario N times; repeats that disagree make the cell FLAKY")
	isolate := fs.Bool("isolate", false, "one VM per scenario (default: one VM per kernel variant)")
	if err := parseArgs(fs, args); err != nil {
		return parseError(err)
	}
	if fs.NArg() > 0 || *jobs < 1 || *count < 1 {
		return exitUsage, usagef("matrix: bad arguments (-j and --count must be >= 1)")
	}
	root, err := assets.Root(c.cache)
	if err != nil {
		return exitFail, err
	}
	pl, err := plan.LoadMatrix(plan.ConfigFile(root, *file), root, plan.Selection{
		KernelsFile: plan.ConfigFile(root, *kernelsFile),
		Kernels:     splitList(*kernelNames),
		Configs:     splitList(*configs),
		Scenarios:   splitList(*scen),
	})
	if err != nil {
		return exitUsage, usageError{err}
	}
	p, o := c.start()
	defer p.Close()
	o.VMs, o.Count, o.Isolate, o.Subdirs = *jobs, *count, *isolate, true
	outDir, err := c.outDir()
	if err != nil {
		return exitFail, err
	}
	out := harness.New(o).Run(ctx, pl, outDir)
	p.Close()
	return finish(out, outDir, ctx.Err())
}
