package plan

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"fusevm/kernel"
	"fusevm/report"
	"fusevm/scenarios"
	"fusevm/verdict"
)

// root is the fusevm source tree: the shipped configs, matrix and series.
var root = filepath.Join("..")

func shipped(t *testing.T, sel Selection) *Plan {
	t.Helper()
	sel.KernelsFile = filepath.Join(root, "configs", "kernels.toml")
	p, err := LoadMatrix(filepath.Join(root, "configs", "matrix.toml"), root, sel)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// byLabel indexes a plan's variants by their report column.
func byLabel(p *Plan) map[string]*Variant {
	out := map[string]*Variant{}
	for _, v := range p.Variants {
		out[v.Kernel.Name+" "+v.Label()] = v
	}
	return out
}

// TestShippedMatrix expands the shipped matrix for a built kernel, an
// online one patched with another base's port, and a prebuilt one.
func TestShippedMatrix(t *testing.T) {
	for _, c := range []struct {
		kernels []string
		want    []string // variant labels
		base    string   // series base directory of the patched variants
	}{
		{nil, []string{"baseline", "v1", "v2", "v3", "v2-patch2-only"}, "7.3"},
		{[]string{"v6.19-rc4"}, []string{"baseline", "v1", "v2", "v3", "v2-patch2-only"}, "6.19"},
		{[]string{"debian-7.3-image"}, []string{"baseline"}, ""},
	} {
		p := shipped(t, Selection{Kernels: c.kernels})
		var got []string
		for _, v := range p.Variants {
			got = append(got, v.Label())
			if v.Series != nil && filepath.Base(filepath.Dir(v.Series.Source)) != c.base {
				t.Errorf("%v: %s uses %s, want base %s", c.kernels, v.Name, v.Series.Source, c.base)
			}
			if v.Kernel.Prebuilt() && (v.Config != "" || v.Series != nil || v.Fragments != nil || v.Boot.CPUs != 1) {
				t.Errorf("prebuilt variant: config %q series %v fragments %v boot %+v", v.Config, v.Series, v.Fragments, v.Boot)
			}
		}
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("%v: variants %v, want %v", c.kernels, got, c.want)
		}
		if len(p.Scenarios) != len(scenarios.Names()) {
			t.Errorf("%v: %d scenarios, want all %d", c.kernels, len(p.Scenarios), len(scenarios.Names()))
		}
	}
	v := byLabel(shipped(t, Selection{}))["debian-7.3 v2-patch2-only"]
	if v == nil || !reflect.DeepEqual(v.Claims, []string{"same_inode_reuse"}) || len(v.Series.Patches) != 1 || !strings.HasPrefix(v.Series.Patches[0].Name, "0002-") {
		t.Errorf("v2-patch2-only: %+v", v)
	}
	_, err := LoadMatrix(filepath.Join(root, "configs", "matrix.toml"), root, Selection{KernelsFile: filepath.Join(root, "configs", "kernels.toml"), Kernels: []string{"debian-7.3", "nosuch"}})
	if err == nil || !strings.Contains(err.Error(), `no kernel "nosuch"`) || !strings.Contains(err.Error(), "debian-7.2") {
		t.Errorf("unknown kernel: %v (want the error to list the known names)", err)
	}
}

// TestDebugMatrixExpectations is `make vmtest-debug`: v2's close-all race
// is a known CRASH under base+debug with both patches, and no other
// column inherits it; v2's patch 2 alone has no close-all at all.
func TestDebugMatrixExpectations(t *testing.T) {
	vs := byLabel(shipped(t, Selection{Configs: []string{"base", "base+debug"}}))
	cases := []struct {
		column string
		want   Expectation
	}{
		{"debian-7.3 v2 (base+debug)", Expectation{verdict.Crash, "idr_for_each walk without RCU: KASAN slab-use-after-free (review of v2)"}},
		{"debian-7.3 v2", Expectation{Verdict: verdict.Pass}},
		{"debian-7.3 v2-patch2-only (base+debug)", Expectation{Verdict: verdict.Fail}},
		{"debian-7.3 v3 (base+debug)", Expectation{Verdict: verdict.Pass}},
		{"debian-7.3 baseline (base+debug)", Expectation{Verdict: verdict.Fail}},
	}
	for _, c := range cases {
		v := vs[c.column]
		if v == nil {
			t.Fatalf("no column %q", c.column)
		}
		if got := v.Expect("close-all-race"); got != c.want {
			t.Errorf("%s close-all-race: %+v, want %+v", c.column, got, c.want)
		}
	}
	// The known issue reproducing keeps the column as expected; the
	// patch-2-only column's FAIL (ENOTTY from the missing ioctl) too.
	r := report.Result{Scenario: "close-all-race", Verdict: verdict.Crash, Reason: "kernel report: KASAN"}
	vs["debian-7.3 v2 (base+debug)"].Settle(&r)
	if !r.AsExpected || r.Cell() != "CRASH (known issue)" {
		t.Errorf("v2 debug: %q", r.Cell())
	}
	r = report.Result{Scenario: "close-all-race", Verdict: verdict.Fail, Reason: "line 9: ioctl close-all: got ENOTTY, want ok"}
	vs["debian-7.3 v2-patch2-only (base+debug)"].Settle(&r)
	if !r.AsExpected || r.KnownIssue != "" || r.Cell() != "FAIL (expected)" {
		t.Errorf("v2-patch2-only debug: %q", r.Cell())
	}
}

// TestSettle covers every way a result meets or misses its expectation.
func TestSettle(t *testing.T) {
	ss, err := scenarios.Load([]string{"smoke-passthrough", "reopen-after-restart", "close-all-race"})
	if err != nil {
		t.Fatal(err)
	}
	base, err := NewVariant(root, Spec{Kernel: Kernel{Name: "k", Spec: "debian:7.3"}, Config: "base"}, ss)
	if err != nil {
		t.Fatal(err)
	}
	v2 := filepath.Join(root, "patches", "fuse-passthrough-recovery", "7.3", "v2")
	debug, err := NewVariant(root, Spec{Kernel: Kernel{Name: "k", Spec: "debian:7.3"}, Config: " base + debug ", Series: v2}, ss)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		v       *Variant
		r       report.Result
		cell    string
		reason  string
		config  string
		variant string
	}{
		{"reproducer fails on the baseline", base, report.Result{Scenario: "reopen-after-restart", Verdict: verdict.Fail, Reason: "line 16: EIO"},
			"FAIL (expected)", "line 16: EIO", "base", "baseline"},
		{"reproducer passes on the baseline", base, report.Result{Scenario: "reopen-after-restart", Verdict: verdict.Pass},
			"PASS (UNEXPECTED, want FAIL)", "passed where FAIL was expected: a reproducer that passes on a kernel without the fix proves nothing", "base", "baseline"},
		{"no needs must pass", base, report.Result{Scenario: "smoke-passthrough", Verdict: verdict.Pass}, "PASS (expected)", "", "base", "baseline"},
		{"claimed fix passes", debug, report.Result{Scenario: "reopen-after-restart", Verdict: verdict.Pass}, "PASS (expected)", "", "base+debug", "v2"},
		{"known issue reproduces", debug, report.Result{Scenario: "close-all-race", Verdict: verdict.Crash, Reason: "kernel report: KASAN"},
			"CRASH (known issue)", "kernel report: KASAN", "base+debug", "v2"},
		{"known issue gone", debug, report.Result{Scenario: "close-all-race", Verdict: verdict.Pass},
			"PASS (UNEXPECTED: known issue CRASH no longer reproduces)", "the known issue (CRASH) no longer reproduces: idr_for_each walk without RCU: KASAN slab-use-after-free (review of v2)", "base+debug", "v2"},
		{"known issue cell did not build", debug, report.Result{Scenario: "close-all-race", Verdict: verdict.Skip, Reason: "patch 0001 does not apply"},
			"SKIP (UNEXPECTED, want CRASH)", "patch 0001 does not apply", "base+debug", "v2"},
		{"merged repeats disagree", base, report.Merge([]report.Result{{Scenario: "smoke-passthrough", Verdict: verdict.Pass}, {Scenario: "smoke-passthrough", Verdict: verdict.Hang, Reason: "timed out"}}),
			"FLAKY (UNEXPECTED, want PASS)", "repeats disagree (PASS x1, HANG x1): timed out", "base", "baseline"},
		{"a report outside every scenario", debug, report.Result{Scenario: "(boot)", Verdict: verdict.Crash, Reason: "outside any scenario: kernel report: WARNING"},
			"CRASH (UNEXPECTED, want PASS)", "outside any scenario: kernel report: WARNING", "base+debug", "v2"},
	}
	for _, c := range cases {
		r := c.r
		c.v.Settle(&r)
		if r.Cell() != c.cell || r.Reason != c.reason || r.Config != c.config || r.Variant != c.variant || r.Kernel != "k" {
			t.Errorf("%s: cell %q reason %q column %s/%s/%s, want %q %q %s/%s", c.name, r.Cell(), r.Reason, r.Kernel, r.Variant, r.Config, c.cell, c.reason, c.variant, c.config)
		}
	}
}

// TestPrefix remakes a cataloged variant with the first k patches.
func TestPrefix(t *testing.T) {
	ss, _ := scenarios.Load([]string{"leak-after-restart", "reopen-after-restart"})
	v2 := filepath.Join(root, "patches", "fuse-passthrough-recovery", "7.3", "v2")
	v, err := NewVariant(root, Spec{Kernel: Kernel{Name: "k", Spec: "debian:7.3"}, Config: "base", Series: v2}, ss)
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Prefix(1)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "v2[1]" || !reflect.DeepEqual(p.Claims, []string{"close_all_ioctl"}) || len(p.Series.Patches) != 1 || p.Version != "v2" {
		t.Errorf("prefix 1: name %s claims %v patches %d", p.Name, p.Claims, len(p.Series.Patches))
	}
	if p.Expect("leak-after-restart").Verdict != verdict.Pass || p.Expect("reopen-after-restart").Verdict != verdict.Fail {
		t.Errorf("prefix 1 expectations: %+v %+v", p.Expect("leak-after-restart"), p.Expect("reopen-after-restart"))
	}
}

func TestWithPatch(t *testing.T) {
	ss, _ := scenarios.Load([]string{"leak-after-restart", "reopen-after-restart"})
	v2 := filepath.Join(root, "patches", "fuse-passthrough-recovery", "7.3", "v2")
	v, err := NewVariant(root, Spec{Kernel: Kernel{Name: "k", Spec: "debian:7.3"}, Config: "base", Series: v2}, ss)
	if err != nil {
		t.Fatal(err)
	}
	extra := kernel.Patch{Name: "mutant-1.patch", Data: []byte("x")}
	m := v.WithPatch(extra, "m1")
	if m.Name != "m1" || len(m.Series.Patches) != 3 || m.Series.Patches[2].Name != "mutant-1.patch" {
		t.Fatalf("mutant: name %s, %d patches", m.Name, len(m.Series.Patches))
	}
	if len(v.Series.Patches) != 2 || v.Name != "v2" {
		t.Errorf("WithPatch changed the original: %s, %d patches", v.Name, len(v.Series.Patches))
	}
	if !reflect.DeepEqual(m.Claims, v.Claims) || m.Expect("leak-after-restart") != v.Expect("leak-after-restart") || m.Expect("reopen-after-restart").Verdict != verdict.Pass {
		t.Errorf("mutant expectations differ from the series': %v %+v", m.Claims, m.Expect("leak-after-restart"))
	}
	if m.Dir() == v.Dir() {
		t.Errorf("mutant and series share the log directory %s", m.Dir())
	}
}

func TestVariantErrors(t *testing.T) {
	k := Kernel{Name: "k", Spec: "debian:7.3"}
	img := Kernel{Name: "img", Image: "/boot/vmlinuz"}
	v2 := filepath.Join(root, "patches", "fuse-passthrough-recovery", "7.3", "v2")
	for _, c := range []struct {
		spec Spec
		want string
	}{
		{Spec{Kernel: k, Config: "base", Picks: []int{2}}, "needs a series"},
		{Spec{Kernel: img, Series: v2}, "cannot take a patch series"},
		{Spec{Kernel: k, Config: "base+nosuch"}, `config fragment "nosuch"`},
		{Spec{Kernel: k, Config: "+"}, "names no fragments"},
		{Spec{Kernel: k, Config: "base", Series: v2, Picks: []int{3}}, "patch 3: the series"},
		{Spec{Kernel: k, Config: "base", Series: filepath.Join(root, "nosuch")}, "no such file"},
	} {
		if _, err := NewVariant(root, c.spec, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.spec, err, c.want)
		}
	}
}

func TestKernelsFileErrors(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{"[[kernel]]\nname = \"a\"\n", "kernels.toml:1: kernel \"a\": needs exactly one of spec"},
		{"[[kernel]]\nname = \"a\"\nspec = \"debian:7.3\"\nimage = \"x\"\n", "kernels.toml:3: kernel \"a\": needs exactly one of spec"},
		{"[[kernel]]\nname = \"a b\"\nspec = \"debian:7.3\"\n", "kernels.toml:2: kernel \"a b\": name must be"},
		{"[[kernel]]\nname = \"a\"\nspec = \"debian:7.3\"\n\n[[kernel]]\nname = \"a\"\nspec = \"debian:7.2\"\n", "kernels.toml:6: kernel \"a\": name used twice"},
		{"[[kernel]]\nname = \"a\"\nimage = \"vmlinuz\"\nbase = \"7.3\"\n", "kernels.toml:4: kernel \"a\": base applies to built kernels only"},
		{"[[kernel]]\nname = \"a\"\nimage = \"debian:linux-image-amd64\"\nmodules = \"m\"\n", "kernels.toml:4: kernel \"a\": modules goes with an image path"},
		{"[[kernel]]\nname = \"a\"\nspec = \"debian:7.3\"\nflavour = \"x\"\n", "kernels.toml:4: unknown key kernel.flavour"},
		{"", "kernels.toml: no [[kernel]] entries"},
		{"[[kernel]]\nname = \"a\"\nspec = 7\n", "incompatible types"},
	} {
		p := filepath.Join(t.TempDir(), "kernels.toml")
		os.WriteFile(p, []byte(c.body), 0o644)
		if _, err := LoadKernels(p); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.body, err, c.want)
		}
	}
}

// patchText is a minimal patch file.
func patchText(n int) string {
	return fmt.Sprintf("Subject: [PATCH %d/2] change %d\n\n---\ndiff --git a/f%d b/f%d\n--- a/f%d\n+++ b/f%d\n@@ -1 +1 @@\n-a\n+b\n", n, n, n, n, n, n)
}

// catalog writes a series.toml for version v9, two patches on base 7.3,
// with the given known-issue tables, and returns its path.
func catalog(t *testing.T, known string) string {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "7.3", "v9"), 0o755)
	for n := 1; n <= 2; n++ {
		os.WriteFile(filepath.Join(dir, "7.3", "v9", fmt.Sprintf("000%d-change.patch", n)), []byte(patchText(n)), 0o644)
	}
	body := "name = \"x\"\n\n[[version]]\nname = \"v9\"\n" + known + `
[[series]]
base = "7.3"
version = "v9"
dir = "7.3/v9"

  [[series.patch]]
  file = "0001-change.patch"
  claims = ["close_all_ioctl"]

  [[series.patch]]
  file = "0002-change.patch"
  claims = ["same_inode_reuse"]
`
	path := filepath.Join(dir, "series.toml")
	os.WriteFile(path, []byte(body), 0o644)
	return path
}

// issue is a [[version.known_issue]] table with one key replaced or added.
func issue(keys ...string) string {
	kv := map[string]string{"scenario": `"close-all-race"`, "config": `"base+debug"`, "verdict": `"CRASH"`, "reason": `"the walk"`}
	order := []string{"scenario", "config", "verdict", "reason"}
	for i := 0; i+1 < len(keys); i += 2 {
		if _, ok := kv[keys[i]]; !ok {
			order = append(order, keys[i])
		}
		kv[keys[i]] = keys[i+1]
	}
	s := "\n  [[version.known_issue]]\n"
	for _, k := range order {
		if kv[k] != "" {
			s += "  " + k + " = " + kv[k] + "\n"
		}
	}
	return s
}

// TestKnownIssueChecks loads catalogs with one bad known issue each: the
// error names the file and the line of the bad key.
func TestKnownIssueChecks(t *testing.T) {
	// Lines: 1 name, 3 [[version]], 4 name = "v9", 5 blank, 6 the issue's
	// header, 7 scenario, 8 config, 9 verdict, 10 reason, 11 added keys;
	// a second issue's header is at 12, its scenario at 13.
	for _, c := range []struct {
		known string
		want  string
	}{
		{issue("scenario", `"close-all-rcae"`), `series.toml:7: known issue of v9: unknown scenario "close-all-rcae" (built-in: `},
		{issue("verdict", `"BOOM"`), `series.toml:9: known issue of v9: verdict "BOOM": want FAIL, CRASH, HANG or FLAKY`},
		{issue("verdict", `"PASS"`), `series.toml:9: known issue of v9: verdict "PASS"`},
		{issue("verdict", `"SKIP"`), `series.toml:9: known issue of v9: verdict "SKIP"`},
		{issue("config", `"base+kasan"`), `series.toml:8: known issue of v9: config fragment "kasan"`},
		{issue("config", `""`), `series.toml:8: known issue of v9: needs config`},
		{issue("reason", `" "`), `series.toml:10: known issue of v9: needs a reason`},
		{issue("patches", `[3]`), `series.toml:11: known issue of v9: patches [3]: v9 on base 7.3 has patches 1 to 2`},
		{issue("patches", `[]`), `series.toml:11: known issue of v9: patches = [] selects no patch`},
		{issue("patches", `[1, 1]`), `series.toml:11: known issue of v9: patches [1 1] names a patch twice`},
		{issue() + issue("patches", "[2, 1]"), `series.toml:13: known issue of v9: the same scenario, config and patches as the known issue at line 6`},
		{issue() + issue("config", `"base + debug"`), `series.toml:13: known issue of v9: the same scenario`},
	} {
		path := catalog(t, c.known)
		if _, err := LoadCatalog(path, root); err == nil || !strings.Contains(err.Error(), path+":") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.known, err, c.want)
		}
	}
	if _, err := LoadCatalog(filepath.Join(root, "patches", "fuse-passthrough-recovery", "series.toml"), root); err != nil {
		t.Errorf("the shipped catalog: %v", err)
	}
}

// TestKnownIssueMatching matches known issues by the exact config set and
// patch selection of a variant.
func TestKnownIssueMatching(t *testing.T) {
	path := catalog(t, issue()+issue("patches", "[1]", "verdict", `"HANG"`))
	series := filepath.Join(filepath.Dir(path), "7.3", "v9")
	ss, _ := scenarios.Load([]string{"close-all-race"})
	k := Kernel{Name: "k", Spec: "debian:7.3"}
	for _, c := range []struct {
		config string
		picks  []int
		want   verdict.Verdict
	}{
		{"base+debug", nil, verdict.Crash},
		{"base + debug", []int{2, 1}, verdict.Crash},
		{"base+debug", []int{1}, verdict.Hang},
		{"base+debug", []int{2}, verdict.Fail},
		{"base", nil, verdict.Pass},
		{"debug+base", nil, verdict.Pass},
		{"base+debug+base", nil, verdict.Pass},
	} {
		v, err := NewVariant(root, Spec{Kernel: k, Config: c.config, Series: series, Picks: c.picks}, ss)
		if err != nil {
			t.Fatal(err)
		}
		if got := v.Expect("close-all-race"); got.Verdict != c.want || (got.KnownIssue != "") != (c.want == verdict.Crash || c.want == verdict.Hang) {
			t.Errorf("config %q patches %v: %+v, want %s", c.config, c.picks, got, c.want)
		}
	}
}

func TestMatrixErrors(t *testing.T) {
	kernels := filepath.Join(root, "configs", "kernels.toml")
	head := "series = \"patches/fuse-passthrough-recovery/series.toml\"\nkernels = [\"debian-7.3\"]\n"
	for _, c := range []struct{ body, want string }{
		{head + "\n[[variant]]\nname = \"v7\"\nversion = \"v7\"\n", `matrix.toml:6: the series has no version v7 for base "7.3"`},
		{"kernels = [\"debian-7.3\"]\n[[variant]]\nname = \"v2\"\nversion = \"v2\"\n", "matrix.toml:4: variant v2 names a version but no series catalog is set"},
		{head + "\n[[variant]]\nname = \"p\"\npatches = [1]\n", "matrix.toml:4: variant p on debian-7.3: a patch selection ([1]) needs a series"},
		{head + "configs = [\"base+nosuch\"]\n[[variant]]\nname = \"b\"\n", `matrix.toml:4: variant b on debian-7.3: config fragment "nosuch"`},
		{head + "scenarios = [\"nosuch\"]\n[[variant]]\nname = \"b\"\n", `unknown scenario "nosuch"`},
		{head, "matrix.toml: needs kernels (or --kernel) and at least one [[variant]]"},
		{head + "[[variant]]\nname = \"b\"\nflavour = 1\n", "matrix.toml:5: unknown key variant.flavour"},
	} {
		p := filepath.Join(t.TempDir(), "matrix.toml")
		os.WriteFile(p, []byte(c.body), 0o644)
		if _, err := LoadMatrix(p, root, Selection{KernelsFile: kernels}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.body, err, c.want)
		}
	}
}

// TestBootSettings reads the shipped debug.boot and rejects bad lines
// with file:line.
func TestBootSettings(t *testing.T) {
	frags, err := fragments(root, "base+debug")
	if err != nil {
		t.Fatal(err)
	}
	b, err := readBoot(frags)
	if err != nil || b.CPUs != 1 || !reflect.DeepEqual(b.Cmdline, []string{"slub_debug=FZPU", "kasan_multi_shot"}) || b.Race != 20*time.Second {
		t.Errorf("base+debug boot: %+v %v", b, err)
	}
	frags, _ = fragments(root, "base")
	if b, err := readBoot(frags); err != nil || b.Race != 5*time.Second {
		t.Errorf("base boot: %+v %v, want race 5s", b, err)
	}
	ss, _ := scenarios.Load([]string{"close-all-race"})
	for config, want := range map[string][2]string{"base": {"5s", ""}, "base+debug": {"20s", "33554432"}} {
		v, err := NewVariant(root, Spec{Kernel: Kernel{Name: "k", Spec: "debian:7.3"}, Config: config}, ss)
		if err != nil || v.Params["race"] != want[0] || v.Params["slab_slack"] != want[1] {
			t.Errorf("%s: race %q, slab slack %q (%v), want %q", config, v.Params["race"], v.Params["slab_slack"], err, want)
		}
	}
	dir := t.TempDir()
	frag := filepath.Join(dir, "x.config")
	os.WriteFile(frag, []byte("CONFIG_X=y\n"), 0o644)
	for body, want := range map[string]string{
		"# c\ncpus: none\n":  "x.boot:2: cpus wants a positive number",
		"cpus: 0\n":          "x.boot:1: cpus wants a positive number",
		"memory: 1G\n":       `x.boot:1: unknown key "memory"`,
		"race: soon\n":       "x.boot:1: race wants a positive duration",
		"slab-slack: lots\n": "x.boot:1: slab-slack wants a size",
	} {
		os.WriteFile(filepath.Join(dir, "x.boot"), []byte(body), 0o644)
		if _, err := readBoot([]string{frag}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", body, err, want)
		}
	}
}

func TestConfigFile(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	os.MkdirAll("configs", 0o755)
	os.WriteFile(filepath.Join("configs", "kernels.toml"), nil, 0o644)
	for _, c := range []struct{ path, want string }{
		{"/etc/kernels.toml", "/etc/kernels.toml"},
		{"configs/kernels.toml", "configs/kernels.toml"},    // here
		{"configs/matrix.toml", "/src/configs/matrix.toml"}, // built in
		{"./my-matrix.toml", "/src/my-matrix.toml"},
	} {
		if got := ConfigFile("/src", c.path); got != c.want {
			t.Errorf("ConfigFile(%q) = %q, want %q", c.path, got, c.want)
		}
	}
}

func TestKernelChoice(t *testing.T) {
	kernels := filepath.Join(root, "configs", "kernels.toml")
	for _, c := range []struct {
		choice KernelChoice
		want   Kernel
	}{
		{KernelChoice{Spec: "debian:7.3", KernelsFile: kernels}, Kernel{Name: "debian:7.3", Spec: "debian:7.3"}},
		{KernelChoice{Spec: "git:/src/linux@v7.3", KernelsFile: "/nonexistent"}, Kernel{Name: "git:/src/linux@v7.3", Spec: "git:/src/linux@v7.3"}},
		{KernelChoice{Spec: "debian-7.3", KernelsFile: kernels}, Kernel{Name: "debian-7.3", Spec: "debian:7.3", Base: "7.3", Note: "Debian's linux-source-7.3: the primary base"}},
		{KernelChoice{Spec: "debian:7.3", Image: "/boot/vmlinuz", Modules: "/lib/modules/7.3.4", KernelsFile: "/nonexistent"}, Kernel{Name: "/boot/vmlinuz", Image: "/boot/vmlinuz", Modules: "/lib/modules/7.3.4"}},
	} {
		got, err := c.choice.Kernel()
		if err != nil || got != c.want {
			t.Errorf("%+v: %+v %v, want %+v", c.choice, got, err, c.want)
		}
	}
	for _, c := range []struct {
		choice KernelChoice
		want   string
	}{
		{KernelChoice{Spec: "nosuch", KernelsFile: kernels}, `no kernel "nosuch" in the kernels file (known: debian-7.3,`},
		{KernelChoice{Spec: "debian-7.3", KernelsFile: filepath.Join(t.TempDir(), "nosuch.toml")}, "kernels file: "},
	} {
		if _, err := c.choice.Kernel(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error with %q", c.choice, err, c.want)
		}
	}
}
