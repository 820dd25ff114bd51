package harness

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"

	"fusevm/bisect"
	"fusevm/verdict"
)

// TestStepRuns runs a bisect step's scenarios once per call, each run in
// a directory of its own, and hands back the settled results.
func TestStepRuns(t *testing.T) {
	f := &fake{verdict: func(_, scenario string, n int) verdict.Verdict {
		if n == 2 && scenario == "reopen-after-restart" {
			return verdict.Fail
		}
		return ""
	}}
	h, _ := newHarness(f, Options{VMs: 1, Count: 1})
	p := testPlan(t, []string{"leak-after-restart", "reopen-after-restart"}, "v2")
	dir := t.TempDir()
	test := h.StepRuns(p.Variants[0], p.Scenarios, dir)
	for n := 1; n <= 2; n++ {
		rs, err := test(context.Background())
		if err != nil || len(rs) != 2 {
			t.Fatalf("run %d: %+v %v", n, rs, err)
		}
		if want := n == 1; rs[1].AsExpected != want {
			t.Errorf("run %d: %+v", n, rs[1])
		}
		if want := fmt.Sprintf("execute v2 [leak-after-restart reopen-after-restart] %s", filepath.Join(dir, fmt.Sprintf("run%d", n))); f.events[len(f.events)-1] != want {
			t.Errorf("run %d: last event %q, want %q", n, f.events[len(f.events)-1], want)
		}
	}
}

// TestSeriesTesterSearch makes the search of the tester's versions: their
// names and patches, in order, tested by the tester.
func TestSeriesTesterSearch(t *testing.T) {
	h, _ := newHarness(&fake{}, Options{VMs: 1, Count: 1})
	p := testPlan(t, []string{"leak-after-restart"}, "v2", "mine")
	st := &SeriesTester{Harness: h, Versions: p.Variants, Scenarios: p.Scenarios, Dir: t.TempDir()}
	s := st.Search(bisect.Policy{Runs: 2, Confirm: 1}, "debian:7.3")
	patches := []string{"0001-fuse-add-ioctl-to-cleanup-all-backing-files.patch", "0002-fuse-Relax-backing-file-validation-to-compare-backin.patch"}
	want := []bisect.Version{{Name: "v2", Patches: patches}, {Name: "mine", Patches: patches}}
	if !reflect.DeepEqual(s.Versions, want) || s.Policy != (bisect.Policy{Runs: 2, Confirm: 1}) || s.Kernel != "debian:7.3" || s.Tester != st || s.Tried != nil {
		t.Errorf("search %+v", s)
	}
}
