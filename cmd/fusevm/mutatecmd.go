package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"fusevm/harness"
	"fusevm/initramfs"
	"fusevm/mutate"
)

// cmdMutate is "fusevm mutate": mutation analysis of a series.
func cmdMutate(ctx context.Context, args []string) (int, error) {
	fs := flag.NewFlagSet("mutate", flag.ContinueOnError)
	var c common
	c.register(fs)
	var vf variantFlags
	vf.register(fs)
	*vf.spec = "debian-7.3"
	fs.Lookup("kernel").DefValue = "debian-7.3"
	jobs := fs.Int("j", 1, "VMs to run in parallel")
	operators := fs.String("operators", "", "comma-separated mutation operators (default: all of "+strings.Join(mutate.Operators, ",")+")")
	only := fs.String("only", "", "comma-separated mutant numbers or IDs (as --list shows them)")
	equivFile := fs.String("equivalent", "", "the file of mutants known to survive, with reasons (default: mutants.toml in the series directory, if there is one)")
	list := fs.Bool("list", false, "list the mutants and exit without building")
	if err := parseArgs(fs, args); err != nil {
		return parseError(err)
	}
	if *jobs < 1 {
		return exitUsage, usagef("mutate: -j must be >= 1")
	}
	if *vf.series == "" {
		return exitUsage, usagef("mutate: --series is required (the series to mutate)")
	}
	if *vf.image != "" {
		return exitUsage, usagef("mutate: a prebuilt kernel (--kernel-image) cannot take a series")
	}
	v, ss, code, err := vf.variant(fs, c.cache)
	if err != nil {
		return code, err
	}
	all, err := mutate.Generate(v.Series, nil)
	if err != nil {
		return exitUsage, usageError{err}
	}
	var numbers []int
	for _, ref := range splitList(*only) {
		n, err := mutate.Number(all, ref)
		if err != nil {
			return exitUsage, usagef("--only %s: %v", ref, err)
		}
		numbers = append(numbers, n)
	}
	picked, names, err := mutate.Pick(all, splitList(*operators), numbers)
	if err != nil {
		return exitUsage, usageError{err}
	}
	path := *equivFile
	if !isSet(fs, "equivalent") {
		path = mutate.DefaultEquivalents(*vf.series)
	}
	equiv, err := mutate.LoadEquivalents(path, all)
	if err != nil {
		return exitUsage, usageError{err}
	}
	if *list {
		for i, m := range picked {
			fmt.Printf("%s %s\n", names[i], m.Describe())
		}
		return exitOK, nil
	}
	if len(picked) == 0 {
		return exitUsage, usagef("mutate: no mutant to run (the series adds no C code the operators change)")
	}
	if err := initramfs.CheckExecutable(); err != nil {
		return exitFail, err
	}
	p, o := c.start()
	defer p.Close()
	o.VMs = *jobs
	outDir, err := c.outDir()
	if err != nil {
		return exitFail, err
	}
	m := harness.New(o).Mutate(ctx, v, ss, picked, names, equiv, outDir)
	p.Close()
	if err := m.WriteFiles(outDir, picked, harness.MutationTitle(v)); err != nil {
		return exitFail, err
	}
	if m.Run == nil {
		m.Control.Run.WriteSummary(os.Stdout)
		fmt.Printf("\nresults: %s\n", filepath.Join(outDir, "control"))
		if ctx.Err() != nil {
			return exitFail, ctx.Err()
		}
		return exitFail, fmt.Errorf("the unmutated series is not as expected: no mutant ran (mutation analysis needs a passing control)")
	}
	mutate.WriteText(os.Stdout, m.Summary, m.Outcomes)
	fmt.Printf("\nresults: %s\n", outDir)
	if ctx.Err() != nil {
		return exitFail, ctx.Err()
	}
	if !m.Explained() {
		return exitFail, nil
	}
	return exitOK, nil
}
