package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"fusevm/harness"
	"fusevm/report"
	"fusevm/scenarios"
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

// gitTester is "Name <email>" from git's user.name and user.email, "" when
// either is unset (or git is missing).
func gitTester() string {
	get := func(key string) string {
		out, err := exec.Command("git", "config", "--get", key).Output()
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(out))
	}
	name, email := get("user.name"), get("user.email")
	if name == "" || email == "" {
		return ""
	}
	return fmt.Sprintf("%s <%s>", name, email)
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
		*testedBy = gitTester()
	}
	builtin := scenarios.Names()
	arg := func(name string) string {
		if slices.Contains(builtin, name) {
			return name
		}
		return filepath.Join(dir, harness.ScenariosDir, name+".fvm")
	}
	if err := run.WriteText(os.Stdout, report.TextOptions{Dir: dir, TestedBy: *testedBy, ScenarioArg: arg}); err != nil {
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
	cell, err := from.FindCell(fs.Arg(1))
	if err != nil {
		return exitUsage, usageError{err}
	}
	if strings.HasPrefix(cell.Scenario, "(") {
		k := from.KernelOf(cell)
		args := ""
		if k != nil {
			args = " " + strings.Join(k.RunArgs, " ")
		}
		return exitUsage, usagef("%s is no scenario but a row about the whole variant: run the variant again (fusevm run%s)", cell.CellID(), args)
	}
	s, err := cellScenario(dir, cell.Scenario)
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
	run, err := harness.New(o).Repro(ctx, harness.Repro{From: from, Cell: cell, Scenario: s, Count: *count}, outDir)
	p.Close()
	if err != nil {
		return exitFail, err
	}
	run.Command = os.Args
	if err := run.WriteFiles(outDir); err != nil {
		return exitFail, err
	}
	run.WriteSummary(os.Stdout)
	same, total := run.Results[0].RunsOf(cell.Verdict)
	fmt.Printf("\n%s: %s in %d of %d run(s) (recorded %s, expected %s)\nresults: %s\n", cell.CellID(), cell.Verdict, same, total, cell.Verdict, cell.Expected, outDir)
	if ctx.Err() != nil {
		return exitFail, ctx.Err()
	}
	if !run.AllAsExpected() {
		return exitFail, nil
	}
	return exitOK, nil
}

// cellScenario is the script a cell ran: the copy in its results
// directory, else the built-in scenario of that name.
func cellScenario(dir, name string) (scenarios.Scenario, error) {
	path := filepath.Join(dir, harness.ScenariosDir, name+".fvm")
	names := []string{name}
	if _, err := os.Stat(path); err == nil {
		names = []string{path}
	}
	ss, err := scenarios.Load(names)
	if err != nil {
		return scenarios.Scenario{}, fmt.Errorf("scenario %s: %w", name, err)
	}
	if len(ss) != 1 {
		return scenarios.Scenario{}, errors.New("scenario " + name + ": not found")
	}
	return ss[0], nil
}
