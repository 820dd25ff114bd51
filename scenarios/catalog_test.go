package scenarios

import (
	"testing"

	"fusevm/verdict"
)

// TestBuiltinsParse parses every shipped script.
func TestBuiltinsParse(t *testing.T) {
	ss, err := Load([]string{"all"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != len(Names()) || len(ss) < 13 {
		t.Fatalf("loaded %d of %d scenarios", len(ss), len(Names()))
	}
	for _, s := range ss {
		if s.Description == "" {
			t.Errorf("%s has no description", s.Name)
		}
	}
}

// TestExpectations resolves claims x needs for the series as the matrix
// uses it: the baseline reproduces, patch 2 alone fixes the EIO but not
// the leak, and scenarios without needs must pass everywhere.
func TestExpectations(t *testing.T) {
	claims := map[string]map[string]bool{
		"baseline":  {},
		"v1":        {"close_all_minus_one": true, "inode_cache_flag": true},
		"v2":        {"close_all_ioctl": true, "same_inode_reuse": true},
		"v2-patch2": {"same_inode_reuse": true},
	}
	want := map[string]map[string]verdict.Verdict{
		"reopen-after-restart":     {"baseline": verdict.Fail, "v1": verdict.Fail, "v2": verdict.Pass, "v2-patch2": verdict.Pass},
		"reregister-no-restart":    {"baseline": verdict.Fail, "v1": verdict.Fail, "v2": verdict.Pass, "v2-patch2": verdict.Pass},
		"leak-after-restart":       {"baseline": verdict.Fail, "v1": verdict.Fail, "v2": verdict.Pass, "v2-patch2": verdict.Fail},
		"crash-loop":               {"baseline": verdict.Fail, "v1": verdict.Fail, "v2": verdict.Pass, "v2-patch2": verdict.Fail},
		"reopen-inode-cache":       {"baseline": verdict.Fail, "v1": verdict.Pass, "v2": verdict.Fail, "v2-patch2": verdict.Fail},
		"different-inode-rejected": {"baseline": verdict.Pass, "v1": verdict.Pass, "v2": verdict.Pass, "v2-patch2": verdict.Pass},
		// The scenarios that catch wrong implementations of the series.
		"close-all-many-ids":             {"baseline": verdict.Fail, "v1": verdict.Fail, "v2": verdict.Pass, "v2-patch2": verdict.Fail},
		"close-all-two-connections":      {"baseline": verdict.Fail, "v1": verdict.Fail, "v2": verdict.Pass, "v2-patch2": verdict.Fail},
		"close-all-new-ids-fresh":        {"baseline": verdict.Fail, "v1": verdict.Fail, "v2": verdict.Pass, "v2-patch2": verdict.Fail},
		"close-all-refused-keeps-ids":    {"baseline": verdict.Pass, "v1": verdict.Pass, "v2": verdict.Pass, "v2-patch2": verdict.Pass},
		"different-fs-same-ino-rejected": {"baseline": verdict.Pass, "v1": verdict.Pass, "v2": verdict.Pass, "v2-patch2": verdict.Pass},
		"hard-link-accepted":             {"baseline": verdict.Fail, "v1": verdict.Fail, "v2": verdict.Pass, "v2-patch2": verdict.Pass},
		"crash-data-mmap":                {"baseline": verdict.Fail, "v1": verdict.Fail, "v2": verdict.Pass, "v2-patch2": verdict.Pass},
		"close-all-no-kernel-leak":       {"baseline": verdict.Fail, "v1": verdict.Fail, "v2": verdict.Pass, "v2-patch2": verdict.Fail},
		"close-minus-one-race":           {"baseline": verdict.Fail, "v1": verdict.Pass, "v2": verdict.Fail, "v2-patch2": verdict.Fail},
		"backing-ids-race":               {"baseline": verdict.Fail, "v1": verdict.Fail, "v2": verdict.Pass, "v2-patch2": verdict.Fail},
		"close-all-enomem":               {"baseline": verdict.Fail, "v1": verdict.Fail, "v2": verdict.Pass, "v2-patch2": verdict.Fail},
		"init-enomem":                    {"baseline": verdict.Fail, "v1": verdict.Fail, "v2": verdict.Pass, "v2-patch2": verdict.Fail},
	}
	for name, byVariant := range want {
		ss, err := Load([]string{name})
		if err != nil {
			t.Fatal(err)
		}
		for v, w := range byVariant {
			if got := Expected(ss[0].Script, claims[v]); got != w {
				t.Errorf("%s on %s: expected %s, want %s", name, v, got, w)
			}
		}
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load([]string{"nope"}); err == nil {
		t.Error("unknown scenario accepted")
	}
	if _, err := Load([]string{"/nonexistent/x.fvm"}); err == nil {
		t.Error("missing file accepted")
	}
}
