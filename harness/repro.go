package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"fusevm/execute"
	"fusevm/kernel"
	"fusevm/report"
	"fusevm/scenarios"
	"fusevm/verdict"
	"fusevm/vmtest"
)

// ScenariosDir, in a results directory, holds a copy of each scenario
// script the run used, as NAME.fvm, for `fusevm repro`.
const ScenariosDir = "scenarios"

// writeScenarios copies the scripts of ss into dir/ScenariosDir.
func writeScenarios(dir string, ss []scenarios.Scenario) error {
	d := filepath.Join(dir, ScenariosDir)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	var errs []error
	for _, s := range ss {
		errs = append(errs, os.WriteFile(filepath.Join(d, s.Name+".fvm"), []byte(s.Text), 0o644))
	}
	return errors.Join(errs...)
}

// Repro is a cell of a finished run to run again, on exactly the kernel
// and guest image it ran on (report.Kernel.Boot), with the same kernel
// command line, vCPUs, claims and scenario parameters.
type Repro struct {
	// From is the finished run and Cell one of its results.
	From *report.Run
	Cell *report.Result
	// Scenario is the cell's script.
	Scenario scenarios.Scenario
	// Count is how many times it runs, each time in a fresh VM.
	Count int
}

// Repro runs the cell rp.Count times under outDir (in run1, run2... when
// more than once), and returns a run with the cell's kernel and one
// result: the repeats merged (FLAKY when they disagree) and judged
// against the cell's recorded expectation; "(boot)" rows follow, if any.
func (h *Harness) Repro(ctx context.Context, rp Repro, outDir string) (*report.Run, error) {
	k := rp.From.KernelOf(rp.Cell)
	if k == nil {
		return nil, fmt.Errorf("no kernel entry for %s in the results", rp.Cell.CellID())
	}
	if k.Boot == nil {
		why := "it did not boot in that run"
		if k.BuildError != "" {
			why = "it did not build: " + k.BuildError
		}
		return nil, fmt.Errorf("%s cannot be booted again: %s (fusevm run %s rebuilds it)", rp.Cell.CellID(), why, strings.Join(k.RunArgs, " "))
	}
	b := *k.Boot
	if err := checkBoot(&b); err != nil {
		return nil, fmt.Errorf("%s: %w (fusevm run %s builds it again)", rp.Cell.CellID(), err, strings.Join(k.RunArgs, " "))
	}
	count := max(rp.Count, 1)
	run := &report.Run{Started: time.Now(), Kernels: []report.Kernel{*k}}
	run.Kernels[0].Boot = &b
	var repeats, boot []report.Result
	for n := 1; n <= count; n++ {
		dir := outDir
		if count > 1 {
			dir = filepath.Join(outDir, fmt.Sprintf("run%d", n))
		}
		opts := []vmtest.Option{
			vmtest.WithAccel(h.Accel),
			vmtest.WithProbeCache(filepath.Join(h.Cache, "kvm-probe.json")),
			// The sockets go in a fresh directory under $TMPDIR: a path in
			// a results directory nested this deep may be too long for a
			// socket.
			vmtest.WithAppend(b.Append...),
		}
		if b.CPUs > 0 {
			opts = append(opts, vmtest.WithCPUs(b.CPUs))
		}
		job := execute.Job{
			Kernel: b.Kernel, Vmlinux: b.Vmlinux, Initramfs: b.Initramfs,
			Scenarios: []scenarios.Scenario{rp.Scenario}, Claims: k.Claims, Params: b.Params,
			OutDir: dir, Console: h.Console, VMOptions: opts,
		}
		what := fmt.Sprintf("repro %s (%d/%d)", rp.Cell.CellID(), n, count)
		h.Log.Stage(what)
		start := time.Now()
		o, err := h.Stages.Execute(ctx, job)
		if err != nil {
			vd, reason := classify(ctx, fmt.Errorf("VM: %w", err))
			h.Log.Printf("%s: %s: %s", what, vd, reason)
			repeats = append(repeats, report.Result{Scenario: rp.Cell.Scenario, Verdict: vd, Reason: reason})
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if err := writeVMs(dir, job, o); err != nil {
			h.Log.Printf("%s: %s: %v", what, VMsFile, err)
		}
		for _, r := range o.Results {
			if r.Scenario == rp.Cell.Scenario {
				repeats = append(repeats, r)
				h.Log.Done(fmt.Sprintf("%s: %s", what, r.Verdict), time.Since(start))
			}
		}
		boot = append(boot, o.Boot...)
	}
	if len(repeats) == 0 {
		return nil, errors.New("no run of the scenario finished")
	}
	m := report.Merge(repeats)
	m.Kernel, m.Variant, m.Config = rp.Cell.Kernel, rp.Cell.Variant, rp.Cell.Config
	m.Expected, m.KnownIssue = rp.Cell.Expected, rp.Cell.KnownIssue
	m.AsExpected = m.Verdict == m.Expected
	if !m.AsExpected && m.Reason == "" {
		m.Reason = fmt.Sprintf("%s where %s was expected", m.Verdict, m.Expected)
	}
	run.Results = append(run.Results, m)
	for _, r := range boot {
		r.Kernel, r.Variant, r.Config = rp.Cell.Kernel, rp.Cell.Variant, rp.Cell.Config
		r.Expected = verdict.Pass
		run.Results = append(run.Results, r)
	}
	run.Finished = time.Now()
	return run, nil
}

// checkBoot checks that the files of b are still those the run booted:
// the kernel against its cache entry's SHA256SUMS (when there is one),
// the guest image against its name (the start of its sha256). A vmlinux
// that is gone only costs the decoded stacks.
func checkBoot(b *report.Boot) error {
	for _, p := range []string{b.Kernel, b.Initramfs} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("the image it booted is gone from the cache: %w", err)
		}
	}
	if b.Vmlinux != "" {
		if _, err := os.Stat(b.Vmlinux); err != nil {
			b.Vmlinux = ""
		}
	}
	sums := filepath.Join(filepath.Dir(b.Kernel), "SHA256SUMS")
	if data, err := os.ReadFile(sums); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			want, name, ok := strings.Cut(line, "  ")
			if !ok {
				continue
			}
			p := filepath.Join(filepath.Dir(b.Kernel), name)
			if p != b.Kernel && p != b.Vmlinux {
				continue
			}
			got, err := kernel.HashFile(p)
			if err != nil {
				return err
			}
			if got != want {
				return fmt.Errorf("%s changed since the run (sha256 mismatch)", p)
			}
		}
	}
	if name := strings.TrimSuffix(filepath.Base(b.Initramfs), ".cpio"); len(name) >= 16 && name != filepath.Base(b.Initramfs) {
		got, err := kernel.HashFile(b.Initramfs)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(got, name) {
			return fmt.Errorf("%s changed since the run (sha256 mismatch)", b.Initramfs)
		}
	}
	return nil
}

// NewRepro is the repro of the cell cellID names (report.Run.FindCell) in
// the run from, read from the results directory dir: its script is the
// copy in dir/ScenariosDir, else the built-in scenario of that name. A
// row about a whole variant ("(boot)", "(features)") is no scenario to
// run again.
func NewRepro(dir string, from *report.Run, cellID string, count int) (Repro, error) {
	cell, err := from.FindCell(cellID)
	if err != nil {
		return Repro{}, err
	}
	if strings.HasPrefix(cell.Scenario, "(") {
		args := ""
		if k := from.KernelOf(cell); k != nil {
			args = " " + strings.Join(k.RunArgs, " ")
		}
		return Repro{}, fmt.Errorf("%s is no scenario but a row about the whole variant: run the variant again (fusevm run%s)", cell.CellID(), args)
	}
	s, err := cellScenario(dir, cell.Scenario)
	if err != nil {
		return Repro{}, err
	}
	return Repro{From: from, Cell: cell, Scenario: s, Count: count}, nil
}

// cellScenario is the script a cell ran: the copy in its results
// directory, else the built-in scenario of that name.
func cellScenario(dir, name string) (scenarios.Scenario, error) {
	path := filepath.Join(dir, ScenariosDir, name+".fvm")
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

// Tally compares the run Repro returned with the recorded cell, in one
// line: "CELL: VERDICT in N of M run(s) (recorded VERDICT, expected
// VERDICT)", the verdict the cell had and how many runs gave it again.
func (rp Repro) Tally(run *report.Run) string {
	same, total := run.Results[0].RunsOf(rp.Cell.Verdict)
	return fmt.Sprintf("%s: %s in %d of %d run(s) (recorded %s, expected %s)", rp.Cell.CellID(), rp.Cell.Verdict, same, total, rp.Cell.Verdict, rp.Cell.Expected)
}

// ScenarioArg gives, for the report of the run in the results directory
// dir (report.TextOptions.ScenarioArg), what `fusevm run --scenarios`
// takes for a scenario: a built-in scenario's name, else the path of the
// copy of its script in dir/ScenariosDir.
func ScenarioArg(dir string) func(name string) string {
	builtin := scenarios.Names()
	return func(name string) string {
		if slices.Contains(builtin, name) {
			return name
		}
		return filepath.Join(dir, ScenariosDir, name+".fvm")
	}
}
