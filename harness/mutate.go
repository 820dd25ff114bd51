package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"fusevm/mutate"
	"fusevm/plan"
	"fusevm/report"
	"fusevm/scenarios"
)

// Mutation is a finished mutation analysis: the series itself (the
// control), then every mutant as a variant of its own.
type Mutation struct {
	// Control is the run of the unmutated series.
	Control *Outcome
	// Run holds the mutants' kernels and cells; nil when the control was
	// not as expected (then no mutant ran).
	Run      *report.Run
	Outcomes []mutate.Outcome
	Summary  mutate.Summary
	Started  time.Time
	Finished time.Time
}

// Mutate runs the series variant v (the control) and then each mutant:
// v with the mutant's patch on top, its expectations unchanged. names are
// the mutants' variant names (mutate.Name). The control runs in
// outDir/control; when one of its cells is not as expected, mutation
// analysis would prove nothing and no mutant runs. The mutants' consoles
// go under outDir, one directory per mutant; a mutant's VM stops at its
// first unexpected verdict (the scenarios after it are SKIP: one
// unexpected cell kills). equiv gives the reason of each mutant known to
// survive (mutate.LoadEquivalents).
func (h *Harness) Mutate(ctx context.Context, v *plan.Variant, ss []scenarios.Scenario, ms []mutate.Mutant, names []string, equiv map[string]string, outDir string) *Mutation {
	m := &Mutation{Started: time.Now()}
	m.Control = h.Run(ctx, &plan.Plan{Variants: []*plan.Variant{v}, Scenarios: ss}, filepath.Join(outDir, "control"))
	if !m.Control.Run.AllAsExpected() || ctx.Err() != nil {
		m.Finished = time.Now()
		return m
	}
	p := &plan.Plan{Scenarios: ss}
	for i, mu := range ms {
		p.Variants = append(p.Variants, v.WithPatch(mu.Diff, names[i]))
	}
	sub := *h
	sub.Subdirs, sub.StopAtUnexpected = true, true
	out := sub.Run(ctx, p, outDir)
	m.Run = out.Run
	for i, mu := range ms {
		var rs []report.Result
		for _, r := range out.Run.Results {
			if r.Variant == names[i] {
				rs = append(rs, r)
			}
		}
		m.Outcomes = append(m.Outcomes, mutate.Classify(mu, out.Run.Kernels[i], rs, equiv))
	}
	m.Summary = mutate.Summarize(m.Outcomes)
	m.Finished = time.Now()
	return m
}

// Explained reports whether the analysis is complete and clean: the
// control as expected, and every mutant that was built either killed or
// listed as equivalent (none survived, none lost to the infrastructure).
func (m *Mutation) Explained() bool {
	return m.Run != nil && m.Summary.Survived == 0 && m.Summary.Infra == 0
}

// MutationFile is the analysis as JSON, beside results.json.
const MutationFile = "mutation.json"

// WriteFiles writes the analysis into dir: the control's results files in
// dir/control; results.json, junit.xml and results.ktap of the mutants'
// cells; summary.md (the kill rate, the counts per operator, every
// survivor with its diff, then the cells); mutation.json; and each
// mutant's patch in dir/mutants/.
func (m *Mutation) WriteFiles(dir string, ms []mutate.Mutant, title string) error {
	if err := mutate.WriteMutants(filepath.Join(dir, "mutants"), ms); err != nil {
		return err
	}
	if err := m.Control.Run.WriteFiles(filepath.Join(dir, "control")); err != nil {
		return err
	}
	if m.Run == nil {
		return nil
	}
	if err := m.Run.WriteFiles(dir); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "summary.md"))
	if err != nil {
		return err
	}
	err = mutate.WriteMarkdown(f, title, m.Summary, m.Outcomes)
	if err == nil {
		_, err = fmt.Fprintf(f, "\n## Cells\n\n")
	}
	if err == nil {
		err = m.Run.WriteMarkdown(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(struct {
		Started  time.Time        `json:"started"`
		Finished time.Time        `json:"finished"`
		Summary  mutate.Summary   `json:"summary"`
		Outcomes []mutate.Outcome `json:"outcomes"`
	}{m.Started, m.Finished, m.Summary, m.Outcomes}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, MutationFile), data, 0o644)
}

// MutationTitle is the title of the summary of a mutation analysis of the
// series variant v, for Mutation.WriteFiles: "Mutation analysis of v2 on
// debian-7.3 (base)".
func MutationTitle(v *plan.Variant) string {
	return fmt.Sprintf("Mutation analysis of %s on %s (%s)", v.Name, v.Kernel.Name, v.Config)
}
