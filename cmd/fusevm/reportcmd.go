package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"fusevm/harness"
	"fusevm/report"
)

// loadResults reads a results directory given on the command line: a
// directory that cannot be read is the user's mistake.
func loadResults(arg string) (string, *report.Run, error) {
	dir, run, err := report.ReadRun(arg)
	if err != nil {
		return "", nil, usageError{err}
	}
	return dir, run, nil
}

// cmdReport is "fusevm report RESULTS": the plain-text report to paste
// into a reply on the series' thread.
func cmdReport(args []string) (int, error) {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	testedBy := fs.String("tested-by", "", `the tester for the Tested-by: line, "Name <email>" (default: git's user.name and user.email)`)
	if err := parseArgs(fs, args); err != nil {
		return parseError(err)
	}
	if fs.NArg() != 1 {
		return exitUsage, usagef("report: want one results directory (fusevm report RESULTS)")
	}
	dir, run, err := loadResults(fs.Arg(0))
	if err != nil {
		return exitUsage, err
	}
	if !isSet(fs, "tested-by") {
		*testedBy = report.GitTester()
	}
	if err := run.WriteText(os.Stdout, report.TextOptions{Dir: dir, TestedBy: *testedBy, ScenarioArg: harness.ScenarioArg(dir)}); err != nil {
		return exitFail, err
	}
	return exitOK, nil
}

// cmdRepro is "fusevm repro RESULTS CELL": one cell again, on the kernel
// and guest image it ran on.
func cmdRepro(ctx context.Context, args []string) (int, error) {
	fs := flag.NewFlagSet("repro", flag.ContinueOnError)
	var c common
	c.registerBoot(fs)
	fs.StringVar(&c.out, "out", "", "results directory (default RESULTS/repro/<time>)")
	count := fs.Int("count", 1, "run the scenario N times, each in a fresh VM (for a flaky cell)")
	if err := parseArgs(fs, args); err != nil {
		return parseError(err)
	}
	if fs.NArg() != 2 || *count < 1 {
		return exitUsage, usagef("repro: want RESULTS CELL (e.g. fusevm repro results/x debian-7.3/v2/close-all-race), --count >= 1")
	}
	dir, from, err := loadResults(fs.Arg(0))
	if err != nil {
		return exitUsage, err
	}
	rp, err := harness.NewRepro(dir, from, fs.Arg(1), *count)
	if err != nil {
		return exitUsage, usageError{err}
	}
	if c.out == "" {
		c.out = filepath.Join(dir, "repro", time.Now().Format("20060102-150405"))
	}
	outDir, err := c.outDir()
	if err != nil {
		return exitFail, err
	}
	p, o := c.start()
	defer p.Close()
	run, err := harness.New(o).Repro(ctx, rp, outDir)
	p.Close()
	if err != nil {
		return exitFail, err
	}
	if err := save(run, outDir); err != nil {
		return exitFail, err
	}
	fmt.Printf("\n%s\nresults: %s\n", rp.Tally(run), outDir)
	if ctx.Err() != nil {
		return exitFail, ctx.Err()
	}
	if !run.AllAsExpected() {
		return exitFail, nil
	}
	return exitOK, nil
}
