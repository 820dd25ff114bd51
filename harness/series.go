package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"fusevm/bisect"
	"fusevm/plan"
	"fusevm/report"
	"fusevm/scenarios"
	"fusevm/vmtest/splat"
)

// SeriesTester runs the targets of a series bisection (it is a
// bisect.Tester): version i is Versions[i], and a prefix of its patches
// is made by plan.Variant.Prefix. Each call runs in a directory of its
// own under Dir: <version>/run<N>, or <version>-first-<k>/run<N>.
type SeriesTester struct {
	Harness   *Harness
	Versions  []*plan.Variant
	Scenarios []scenarios.Scenario
	Dir       string
	runs      map[string]int
}

// Test runs the named scenarios (all when names is nil, or names no
// scenario) once on version with its first patches (all when patches < 0).
func (t *SeriesTester) Test(ctx context.Context, version, patches int, names []string) ([]report.Result, error) {
	v := t.Versions[version]
	key := v.Name
	if patches >= 0 {
		p, err := v.Prefix(patches)
		if err != nil {
			return nil, fmt.Errorf("%s, first %d patches: %w", v.Name, patches, err)
		}
		v, key = p, fmt.Sprintf("%s-first-%d", v.Name, patches)
	}
	ss := t.Scenarios
	if names != nil {
		ss = slices.DeleteFunc(slices.Clone(ss), func(s scenarios.Scenario) bool { return !slices.Contains(names, s.Name) })
	}
	if len(ss) == 0 {
		// names held only rows that are no scenario ("(boot)",
		// "(features)"): any VM can give them, but it needs scenarios
		// to boot at all, and a report outside them may follow any.
		ss = t.Scenarios
	}
	if t.runs == nil {
		t.runs = map[string]int{}
	}
	t.runs[key]++
	out := t.Harness.Run(ctx, &plan.Plan{Variants: []*plan.Variant{v}, Scenarios: ss}, filepath.Join(t.Dir, key, fmt.Sprintf("run%d", t.runs[key])))
	return out.Run.Results, nil
}

// Excerpt is r's kernel report, or its reason and the last 20 console
// lines of its scenario.
func (t *SeriesTester) Excerpt(r report.Result) string {
	if r.SplatText != "" {
		return r.SplatText
	}
	console, err := os.ReadFile(r.ConsoleLog)
	if err != nil {
		return r.Reason
	}
	lines := splat.Section(console, r.Scenario)
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return r.Reason + "\n" + strings.Join(lines, "\n")
}

// StepRuns is the test of a bisect step (bisect.CommitStep.Test): each
// call runs the scenarios ss once on v, the N-th call in outDir/run<N>,
// and returns their results.
func (h *Harness) StepRuns(v *plan.Variant, ss []scenarios.Scenario, outDir string) func(context.Context) ([]report.Result, error) {
	n := 0
	return func(ctx context.Context) ([]report.Result, error) {
		n++
		out := h.Run(ctx, &plan.Plan{Variants: []*plan.Variant{v}, Scenarios: ss}, filepath.Join(outDir, fmt.Sprintf("run%d", n)))
		return out.Run.Results, nil
	}
}

// Search is the series bisection of t.Versions, in order, on the base
// kernel named kernel, under policy p, with t as its tester. It has no
// Tried.
func (t *SeriesTester) Search(p bisect.Policy, kernel string) *bisect.SeriesSearch {
	s := &bisect.SeriesSearch{Policy: p, Kernel: kernel, Tester: t}
	for _, v := range t.Versions {
		bv := bisect.Version{Name: v.Name}
		for _, pt := range v.Series.Patches {
			bv.Patches = append(bv.Patches, pt.Name)
		}
		s.Versions = append(s.Versions, bv)
	}
	return s
}
