package plan

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"fusevm/scenarios"
)

func TestParseVersionClaims(t *testing.T) {
	vc, err := ParseVersionClaims([]string{"my-v4=close_all_ioctl,same_inode_reuse", "v5:2=same_inode_reuse", "v5:1=close_all_ioctl", "inode_cache_flag", "v6="})
	if err != nil {
		t.Fatal(err)
	}
	want := VersionClaims{
		"my-v4": {0: {"close_all_ioctl", "same_inode_reuse"}},
		"v5":    {1: {"close_all_ioctl"}, 2: {"same_inode_reuse"}},
		"":      {0: {"inode_cache_flag"}},
		"v6":    {0: {}},
	}
	if !reflect.DeepEqual(vc, want) {
		t.Errorf("got %v, want %v", vc, want)
	}
	for _, bad := range []string{"v5:0=x", "v5:x=y", "=x"} {
		if _, err := ParseVersionClaims([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestClaimsOf(t *testing.T) {
	pc := map[int][]string{1: {"a"}, 2: {"b"}, 0: {"c"}}
	for _, c := range []struct {
		picks []int
		want  []string
	}{
		{nil, []string{"a", "b", "c"}},
		{[]int{1}, []string{"a"}},
		{[]int{2}, []string{"b", "c"}},
		{[]int{1, 2}, []string{"a", "b", "c"}},
	} {
		if got := claimsOf(pc, c.picks, 2); !reflect.DeepEqual(got, c.want) {
			t.Errorf("picks %v: %v, want %v", c.picks, got, c.want)
		}
	}
}

// mySeries copies a shipped version outside every series.toml: a new
// posting nobody has catalogued.
func mySeries(t *testing.T, name string) string {
	t.Helper()
	src := filepath.Join(root, "patches", "fuse-passthrough-recovery", "7.3", "v3")
	dir := filepath.Join(t.TempDir(), "postings", "x", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(src)
	for _, e := range ents {
		data, _ := os.ReadFile(filepath.Join(src, e.Name()))
		os.WriteFile(filepath.Join(dir, e.Name()), data, 0o644)
	}
	return dir
}

func TestSeriesVersions(t *testing.T) {
	ss, err := scenarios.Load([]string{"all"})
	if err != nil {
		t.Fatal(err)
	}
	k := Kernel{Name: "debian:7.3", Spec: "debian:7.3"}
	v2 := filepath.Join(root, "patches", "fuse-passthrough-recovery", "7.3", "v2")
	my := mySeries(t, "my-v4")

	// Without claims, a version outside the catalog is refused, naming
	// the flag that gives them.
	if _, err := SeriesVersions(root, k, "base", []string{v2, my}, nil, ss); err == nil || !strings.Contains(err.Error(), "--claims my-v4=") {
		t.Fatalf("no claims: %v", err)
	}

	// Bare claims go to the one version outside the catalog, named ones
	// to that version; the catalogued v2 keeps its own.
	for _, flag := range []string{"close_all_ioctl,same_inode_reuse", "my-v4=close_all_ioctl,same_inode_reuse", my + "=close_all_ioctl,same_inode_reuse"} {
		vc, _ := ParseVersionClaims([]string{flag})
		vs, err := SeriesVersions(root, k, "base", []string{v2, my}, vc, ss)
		if err != nil {
			t.Fatalf("%s: %v", flag, err)
		}
		if vs[0].Name != "v2" || !reflect.DeepEqual(vs[0].Claims, []string{"close_all_ioctl", "same_inode_reuse"}) {
			t.Errorf("%s: v2 is %s claiming %v", flag, vs[0].Name, vs[0].Claims)
		}
		if vs[1].Name != "my-v4" || !reflect.DeepEqual(vs[1].Claims, []string{"close_all_ioctl", "same_inode_reuse"}) {
			t.Errorf("%s: my-v4 is %s claiming %v", flag, vs[1].Name, vs[1].Claims)
		}
		// The whole version's claims are made by its last patch.
		p, err := vs[1].Prefix(1)
		if err != nil || len(p.Claims) != 0 {
			t.Errorf("%s: first patch of my-v4 claims %v (%v), want nothing", flag, p.Claims, err)
		}
		if got := vs[1].Expect("leak-after-restart").Verdict; got != "PASS" {
			t.Errorf("%s: my-v4 expects %s of leak-after-restart", flag, got)
		}
	}

	// Per-patch claims add up, as in a series.toml.
	vc, _ := ParseVersionClaims([]string{"my-v4:1=close_all_ioctl", "my-v4:2=same_inode_reuse"})
	vs, err := SeriesVersions(root, k, "base", []string{my}, vc, ss)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := vs[0].Prefix(1)
	if !reflect.DeepEqual(p.Claims, []string{"close_all_ioctl"}) || !reflect.DeepEqual(vs[0].Claims, []string{"close_all_ioctl", "same_inode_reuse"}) {
		t.Errorf("per-patch claims: prefix %v, whole %v", p.Claims, vs[0].Claims)
	}
	if args := vs[0].RunArgs(); !reflect.DeepEqual(args, []string{"--kernel", "debian:7.3", "--series", my, "--claims", "close_all_ioctl,same_inode_reuse"}) {
		t.Errorf("RunArgs = %q", args)
	}

	for _, c := range []struct {
		paths []string
		flags []string
		want  string
	}{
		{[]string{my, mySeries(t, "my-v5")}, []string{"close_all_ioctl"}, "name each"},
		{[]string{v2}, []string{"close_all_ioctl"}, "every version is in a series.toml"},
		{[]string{my}, []string{"my-v9=close_all_ioctl"}, "no version my-v9"},
		{[]string{my}, []string{"my-v4:3=close_all_ioctl"}, "patch 3: the series has 2 patches"},
	} {
		vc, _ := ParseVersionClaims(c.flags)
		if _, err := SeriesVersions(root, k, "base", c.paths, vc, ss); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %v: %v, want %q", c.paths, c.flags, err, c.want)
		}
	}
}

// TestRunArgs: the `fusevm run` flags that rebuild each variant of the
// shipped matrix name the built-in series relative to the tree.
func TestRunArgs(t *testing.T) {
	p := shipped(t, Selection{Configs: []string{"base+debug"}})
	got := map[string][]string{}
	for _, v := range p.Variants {
		got[v.Name] = v.RunArgs()
	}
	want := map[string][]string{
		"baseline":       {"--kernel", "debian:7.3", "--config", "base+debug"},
		"v2":             {"--kernel", "debian:7.3", "--config", "base+debug", "--series", "patches/fuse-passthrough-recovery/7.3/v2"},
		"v2-patch2-only": {"--kernel", "debian:7.3", "--config", "base+debug", "--series", "patches/fuse-passthrough-recovery/7.3/v2", "--patches", "2", "--name", "v2-patch2-only"},
	}
	for name, w := range want {
		if !reflect.DeepEqual(got[name], w) {
			t.Errorf("%s: %q, want %q", name, got[name], w)
		}
	}
}
