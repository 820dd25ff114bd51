package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fusevm/verdict"
)

// ktapRun is sampleRun with the other shapes KTAP renders: an INFRA cell,
// an unexpected HANG, a "(boot)" CRASH with a decoded stack whose reason
// quotes a line kunit.py takes for the end of KTAP, and a variant whose
// every cell was skipped.
func ktapRun() *Run {
	run := sampleRun()
	add := func(r Result, expected verdict.Verdict) {
		r.Kernel, r.Duration = "debian:7.3", time.Second
		r.Expected, r.AsExpected = expected, r.Verdict == expected
		run.Results = append(run.Results, r)
	}
	run.Kernels = append(run.Kernels, Kernel{Name: "debian:7.3", Variant: "v3", Config: "base", Identity: "debian linux-source-7.3 7.3.4-1~bpo13+1", Patches: []string{"0001-a.patch"}, Claims: []string{"close_all_ioctl"}})
	add(Result{Variant: "v3", Config: "base", Scenario: "leak-after-restart", Verdict: verdict.Hang, Reason: "scenario timed out after 1m0s in line 12: umount-backing"}, verdict.Pass)
	add(Result{Variant: "v3", Config: "base", Scenario: "stale-id", Verdict: verdict.Infra, Reason: "VM: qemu: could not open kernel file"}, verdict.Pass)
	add(Result{Variant: "v3", Config: "base", Scenario: "(boot)", Verdict: verdict.Crash, Splat: "WARNING in fuse_backing_close",
		Reason: "outside any scenario: kernel report: WARNING in fuse_backing_close; last line: Kernel panic - not syncing: VFS: Unable to mount root fs",
		Stack:  "fuse_backing_close+0x5b/0xa0 fs/fuse/backing.c:184\n  inlined fuse_backing_put fs/fuse/backing.c:40\nfuse_dev_ioctl+0x1f/0x80 fs/fuse/dev.c:2601\n"}, verdict.Pass)
	add(Result{Variant: "v3", Config: "base", Scenario: "close-all-race", Verdict: verdict.Fail, Reason: "line 3: ioctl close-all: got ENOTTY, want ok"}, verdict.Fail)
	// A variant whose results are all SKIP (it did not apply).
	for _, s := range []string{"smoke-passthrough", "reopen-after-restart"} {
		add(Result{Variant: "v8", Config: "base", Scenario: s, Verdict: verdict.Skip, Reason: "patch 0002-y.patch does not apply: fs/fuse/iomode.c"}, verdict.Pass)
	}
	return run
}

// kunitStatus is what kunit.py's JSON should say of r: SKIP for a skipped
// cell, PASS for one as expected, FAIL for the others.
func kunitStatus(r Result) string {
	switch {
	case r.Verdict == verdict.Skip:
		return "SKIP"
	case r.AsExpected:
		return "PASS"
	}
	return "FAIL"
}

func TestKTAPGolden(t *testing.T) {
	var b bytes.Buffer
	if err := ktapRun().WriteKTAP(&b); err != nil {
		t.Fatal(err)
	}
	golden(t, "results.ktap", b.Bytes())
	for i, l := range strings.Split(b.String(), "\n") {
		if strings.Contains(l, "Kernel panic - not syncing: VFS:") {
			t.Errorf("line %d quotes kunit.py's end-of-KTAP marker: %q", i+1, l)
		}
	}
}

// kunitPy finds kunit.py in a kernel source fusevm has fetched into its
// cache, and skips the test when there is none (or no python3).
func kunitPy(t *testing.T) string {
	t.Helper()
	cache := os.Getenv("FUSEVM_CACHE")
	if cache == "" {
		if x := os.Getenv("XDG_CACHE_HOME"); x != "" {
			cache = filepath.Join(x, "fusevm")
		} else if home, err := os.UserHomeDir(); err == nil {
			cache = filepath.Join(home, ".cache", "fusevm")
		}
	}
	found, _ := filepath.Glob(filepath.Join(cache, "src", "*", "linux", "tools", "testing", "kunit", "kunit.py"))
	if len(found) == 0 {
		t.Skipf("no kernel source with tools/testing/kunit in the fusevm cache %s (a `fusevm run` fetches one)", cache)
	}
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not installed: kunit.py needs it")
	}
	return found[0]
}

// kunitGroup is the part of kunit.py's JSON the test reads.
type kunitGroup struct {
	Name      string       `json:"name"`
	SubGroups []kunitGroup `json:"sub_groups"`
	TestCases []struct {
		Name   string `json:"name"`
		Status string `json:"status"`
	} `json:"test_cases"`
	Misc struct {
		Errors int `json:"errors"`
	} `json:"misc"`
}

// parseKTAP runs the kernel's own KTAP parser on run's results.ktap.
func parseKTAP(t *testing.T, kunit string, run *Run) (kunitGroup, string, int) {
	t.Helper()
	dir := t.TempDir()
	if err := run.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	jsonPath := filepath.Join(dir, "kunit.json")
	cmd := exec.Command("python3", kunit, "parse", "--json="+jsonPath, filepath.Join(dir, "results.ktap"))
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatalf("kunit.py wrote no JSON (%v):\n%s", err, out)
	}
	var g kunitGroup
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	return g, string(out), code
}

// TestKTAPKunitParser checks results.ktap with the kernel's KTAP parser
// (tools/testing/kunit/kunit.py parse): no parse error, a group per kernel
// variant in run order, and per scenario the status its result calls for.
func TestKTAPKunitParser(t *testing.T) {
	kunit := kunitPy(t)
	run := ktapRun()
	g, out, code := parseKTAP(t, kunit, run)
	if strings.Contains(out, "[ERROR]") || g.Misc.Errors != 0 {
		t.Errorf("kunit.py reports errors:\n%s", out)
	}
	if code != 1 {
		t.Errorf("kunit.py parse exit %d, want 1 (some results are not as expected):\n%s", code, out)
	}
	want := map[string]map[string]string{}
	var order []string
	for _, r := range run.Results {
		name := r.Kernel + "/" + r.columnID()
		if want[name] == nil {
			want[name] = map[string]string{}
			order = append(order, name)
		}
		want[name][r.Scenario] = kunitStatus(r)
	}
	if len(g.SubGroups) != len(order) {
		t.Fatalf("kunit.py sees %d variants, want %d:\n%s", len(g.SubGroups), len(order), out)
	}
	for i, sg := range g.SubGroups {
		if sg.Name != order[i] {
			t.Errorf("variant %d: kunit.py names it %q, want %q", i+1, sg.Name, order[i])
		}
		got := map[string]string{}
		for _, tc := range sg.TestCases {
			got[tc.Name] = tc.Status
		}
		for s, st := range want[sg.Name] {
			if got[s] != st {
				t.Errorf("%s %s: kunit.py says %q, want %q", sg.Name, s, got[s], st)
			}
		}
		if len(got) != len(want[sg.Name]) {
			t.Errorf("%s: kunit.py sees %v, want %v", sg.Name, got, want[sg.Name])
		}
	}

	// A run with every result as expected, reproducers' FAILs and a known
	// issue included, passes.
	okRun := &Run{Kernels: run.Kernels[:1]}
	for _, r := range run.Results {
		if r.AsExpected {
			okRun.Results = append(okRun.Results, r)
		}
	}
	g, out, code = parseKTAP(t, kunit, okRun)
	if code != 0 || strings.Contains(out, "[ERROR]") || strings.Contains(out, "FAILED") {
		t.Errorf("all as expected: kunit.py parse exit %d:\n%s", code, out)
	}
	if n := len(okRun.Results); !strings.Contains(out, fmt.Sprintf("Ran %d tests: passed: %d\n", n, n)) {
		t.Errorf("all as expected: kunit.py's summary does not say %d passed:\n%s", n, out)
	}
	if len(g.SubGroups) != 3 {
		t.Errorf("all as expected: kunit.py sees %d variants, want 3", len(g.SubGroups))
	}
}
