package harness

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fusevm/kernel"
	"fusevm/mutate"
	"fusevm/verdict"
)

// mutantsOf returns the first n mutants of the shipped 7.3 v2 and their
// variant names.
func mutantsOf(t *testing.T, s *kernel.Series, n int) ([]mutate.Mutant, []string) {
	t.Helper()
	ms, err := mutate.Generate(s, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for i := range ms[:n] {
		names = append(names, mutate.Name(i+1, len(ms)))
	}
	return ms[:n], names
}

// TestMutate runs the control first, then every mutant as the series plus
// its patch with the series' expectations: an unexpected cell kills, a
// mutant that does not build is counted apart, an equivalent one is
// explained, and a survivor makes the analysis unexplained.
func TestMutate(t *testing.T) {
	p := testPlan(t, []string{"smoke-passthrough", "stale-id"}, "v2")
	v := p.Variants[0]
	ms, names := mutantsOf(t, v.Series, 4)
	f := &fake{
		prepareErr: map[string]error{names[1]: &kernel.BuildError{Stage: "compile", File: "fs/fuse/backing.c", Msg: "error: x undeclared"}},
		verdict: func(variant, scenario string, _ int) verdict.Verdict {
			if variant == names[0] && scenario == "stale-id" {
				return verdict.Fail
			}
			return ""
		},
	}
	h, _ := newHarness(f, Options{VMs: 2, Count: 1})
	dir := t.TempDir()
	m := h.Mutate(context.Background(), v, p.Scenarios, ms, names, map[string]string{ms[2].ID: "debug output only"}, dir)
	if m.Run == nil {
		t.Fatalf("no mutant ran; control %+v", m.Control.Run.Results)
	}
	if f.events[0] != "prepare v2" || !strings.HasPrefix(f.events[1], "execute v2 ") {
		t.Errorf("the control does not come first: %v", f.events)
	}
	for i, want := range []mutate.State{mutate.Killed, mutate.NotBuilt, mutate.Equivalent, mutate.Survived} {
		if got := m.Outcomes[i].State; got != want {
			t.Errorf("%s (%s): %s, want %s (%s)", names[i], ms[i].ID, got, want, m.Outcomes[i].Reason)
		}
	}
	if f.stops["v2"] || !f.stops[names[0]] || !f.stops[names[3]] {
		t.Errorf("the control must run whole, each mutant stop at its first unexpected verdict: %v", f.stops)
	}
	if got := m.Outcomes[0].Killers; len(got) != 1 || got[0] != "stale-id" {
		t.Errorf("killers %v", got)
	}
	for _, r := range m.Run.Results {
		if r.Scenario == "stale-id" && r.Expected != verdict.Pass {
			t.Errorf("%s: stale-id expects %s, not the series' PASS", r.Variant, r.Expected)
		}
	}
	if k := m.Run.Kernels[0]; len(k.Patches) != 3 || k.Patches[2] != ms[0].Diff.Name {
		t.Errorf("mutant kernel patches %v, want the series and %s", k.Patches, ms[0].Diff.Name)
	}
	if m.Explained() {
		t.Error("a survivor, yet explained")
	}
	if err := m.WriteFiles(dir, ms, "test"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"control/results.json", "results.json", "junit.xml", "summary.md", MutationFile, "mutants/" + ms[3].Diff.Name} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
	summary, _ := os.ReadFile(filepath.Join(dir, "summary.md"))
	if !strings.Contains(string(summary), ms[3].ID) || !strings.Contains(string(summary), "## Cells") {
		t.Errorf("summary.md lacks the survivor or the cells:\n%s", summary)
	}
}

// TestMutateBadControl: when the series itself is not as expected, no
// mutant is built or run.
func TestMutateBadControl(t *testing.T) {
	p := testPlan(t, []string{"smoke-passthrough", "stale-id"}, "v2")
	v := p.Variants[0]
	ms, names := mutantsOf(t, v.Series, 2)
	f := &fake{executeErr: map[string]error{"v2": errors.New("qemu: boom")}}
	h, _ := newHarness(f, Options{VMs: 1, Count: 1})
	dir := t.TempDir()
	m := h.Mutate(context.Background(), v, p.Scenarios, ms, names, nil, dir)
	if m.Run != nil || m.Explained() || len(f.events) != 2 {
		t.Errorf("mutants ran after a failing control: %v", f.events)
	}
	if err := m.WriteFiles(dir, ms, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "control", "results.json")); err != nil {
		t.Error(err)
	}
}

func TestMutationTitle(t *testing.T) {
	p := testPlan(t, []string{"smoke-passthrough"}, "v2")
	if got, want := MutationTitle(p.Variants[0]), "Mutation analysis of v2 on k (base)"; got != want {
		t.Errorf("MutationTitle = %q, want %q", got, want)
	}
}
