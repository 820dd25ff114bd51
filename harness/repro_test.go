package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fusevm/report"
	"fusevm/verdict"
)

// TestNewRepro picks the cell and its script: the copy in the results
// directory first, the built-in scenario otherwise; a row about a whole
// variant is refused with the command that runs the variant again.
func TestNewRepro(t *testing.T) {
	dir := t.TempDir()
	from := &report.Run{
		Kernels: []report.Kernel{{Name: "debian-7.3", Variant: "v2", Config: "base", RunArgs: []string{"--kernel", "debian:7.3", "--series", "v2"}}},
		Results: []report.Result{
			{Kernel: "debian-7.3", Variant: "v2", Config: "base", Scenario: "stale-id", Verdict: verdict.Crash, Expected: verdict.Pass},
			{Kernel: "debian-7.3", Variant: "v2", Config: "base", Scenario: "mine", Verdict: verdict.Pass, Expected: verdict.Pass},
			{Kernel: "debian-7.3", Variant: "v2", Config: "base", Scenario: "gone", Verdict: verdict.Pass, Expected: verdict.Pass},
			{Kernel: "debian-7.3", Variant: "v2", Config: "base", Scenario: "(boot)", Verdict: verdict.Crash, Expected: verdict.Pass},
		},
	}
	os.MkdirAll(filepath.Join(dir, ScenariosDir), 0o755)
	os.WriteFile(filepath.Join(dir, ScenariosDir, "mine.fvm"), []byte("# my own\nbacking 16M\n"), 0o644)

	rp, err := NewRepro(dir, from, "v2/stale-id", 3)
	if err != nil || rp.Cell != &from.Results[0] || rp.Scenario.Name != "stale-id" || rp.Count != 3 || rp.From != from {
		t.Errorf("built-in scenario: %+v %v", rp, err)
	}
	rp, err = NewRepro(dir, from, "mine", 1)
	if err != nil || rp.Cell != &from.Results[1] || !strings.Contains(rp.Scenario.Text, "# my own") {
		t.Errorf("the copy in the results: %+v %v", rp, err)
	}
	for _, c := range []struct{ id, want string }{
		{"nosuch", `no cell "nosuch" in these results`},
		{"gone", `scenario gone: unknown scenario "gone"`},
		{"(boot)", "debian-7.3/v2/(boot) is no scenario but a row about the whole variant: run the variant again (fusevm run --kernel debian:7.3 --series v2)"},
	} {
		if _, err := NewRepro(dir, from, c.id, 1); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.id, err, c.want)
		}
	}

	rp, _ = NewRepro(dir, from, "stale-id", 3)
	again := &report.Run{Results: []report.Result{{Verdict: verdict.Flaky, Runs: []verdict.Verdict{verdict.Crash, verdict.Pass, verdict.Crash}}}}
	if got, want := rp.Tally(again), "debian-7.3/v2/stale-id: CRASH in 2 of 3 run(s) (recorded CRASH, expected PASS)"; got != want {
		t.Errorf("Tally = %q, want %q", got, want)
	}
}

func TestScenarioArg(t *testing.T) {
	arg := ScenarioArg("/results/x")
	if got := arg("stale-id"); got != "stale-id" {
		t.Errorf("built-in: %q", got)
	}
	if got, want := arg("mine"), filepath.Join("/results/x", ScenariosDir, "mine.fvm"); got != want {
		t.Errorf("own script: %q, want %q", got, want)
	}
}
