package report

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fusevm/verdict"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// sampleRun covers every cell shape: expected PASS and FAIL, an unexpected
// PASS, a CRASH with a splat, a known issue, a FLAKY merge, a build SKIP.
func sampleRun() *Run {
	t0 := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	run := &Run{Started: t0, Finished: t0.Add(90 * time.Second)}
	run.Kernels = []Kernel{
		{Name: "debian:7.3", Spec: "debian:7.3", Variant: "baseline", Config: "base", Identity: "debian linux-source-7.3 7.3.4-1~bpo13+1", Version: "7.3.4", Key: "k1", Cached: true},
		{Name: "debian:7.3", Spec: "debian:7.3", Variant: "v2", Config: "base+debug", Identity: "debian linux-source-7.3 7.3.4-1~bpo13+1", Version: "7.3.4", Patches: []string{"0001-a.patch", "0002-b.patch"}, Claims: []string{"close_all_ioctl", "same_inode_reuse"}, Key: "k2"},
		{Name: "debian:7.3", Spec: "debian:7.3", Variant: "v9", Config: "base", BuildError: "patch 0001-x.patch does not apply: fs/fuse/dev.c hunk #1 @@ -1,3 +1,3 @@"},
	}
	// add sets the expectation as plan.Variant.Settle does.
	add := func(r Result, expected verdict.Verdict, knownIssue string) {
		r.Duration = 1500 * time.Millisecond
		r.Expected, r.KnownIssue, r.AsExpected = expected, knownIssue, r.Verdict == expected
		run.Results = append(run.Results, r)
	}
	add(Result{Kernel: "debian:7.3", Variant: "baseline", Config: "base", Scenario: "reopen-after-restart", Verdict: verdict.Fail, Reason: "line 16: open h2 a.txt: got EIO, want ok"}, verdict.Fail, "")
	add(Result{Kernel: "debian:7.3", Variant: "baseline", Config: "base", Scenario: "reregister-no-restart", Verdict: verdict.Pass, Reason: "passed where FAIL was expected: a reproducer that passes on a kernel without the fix proves nothing"}, verdict.Fail, "")
	add(Result{Kernel: "debian:7.3", Variant: "baseline", Config: "base", Scenario: "smoke-passthrough", Verdict: verdict.Pass}, verdict.Pass, "")
	add(Result{Kernel: "debian:7.3", Variant: "v2", Config: "base+debug", Scenario: "reopen-after-restart", Verdict: verdict.Pass}, verdict.Pass, "")
	add(Result{Kernel: "debian:7.3", Variant: "v2", Config: "base+debug", Scenario: "close-all-race", Verdict: verdict.Crash, Splat: "KASAN: slab-use-after-free in idr_for_each", SplatText: "BUG: KASAN: slab-use-after-free in idr_for_each+0x1b/0x120", Reason: "kernel splat: KASAN: slab-use-after-free in idr_for_each"}, verdict.Crash, "idr_for_each walk without RCU")
	add(Merge([]Result{
		{Kernel: "debian:7.3", Variant: "v2", Config: "base+debug", Scenario: "smoke-passthrough", Verdict: verdict.Pass},
		{Kernel: "debian:7.3", Variant: "v2", Config: "base+debug", Scenario: "smoke-passthrough", Verdict: verdict.Hang, Reason: "scenario timed out after 1m0s in line 9: open h a.txt"},
	}), verdict.Pass, "")
	add(Result{Kernel: "debian:7.3", Variant: "v9", Config: "base", Scenario: "smoke-passthrough", Verdict: verdict.Skip, Reason: "patch 0001-x.patch does not apply: fs/fuse/dev.c hunk #1 @@ -1,3 +1,3 @@"}, verdict.Pass, "")
	return run
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestGoldenOutputs(t *testing.T) {
	run := sampleRun()
	dir := t.TempDir()
	if err := run.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"results.json", "junit.xml", "summary.md"} {
		data, _ := os.ReadFile(filepath.Join(dir, name))
		golden(t, name, data)
	}
	var b bytes.Buffer
	run.WriteSummary(&b)
	golden(t, "summary.txt", b.Bytes())
}

// TestWriteFilesGoesOn writes the files it can when one cannot be written.
func TestWriteFilesGoesOn(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "junit.xml"), 0o755) // a directory: the file cannot be created
	err := sampleRun().WriteFiles(dir)
	if err == nil || !strings.Contains(err.Error(), "junit.xml") {
		t.Errorf("error %v, want one naming junit.xml", err)
	}
	for _, name := range []string{"results.json", "summary.md"} {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.Size() == 0 {
			t.Errorf("%s not written: %v", name, err)
		}
	}
}

func TestExpectationCells(t *testing.T) {
	run := sampleRun()
	if run.AllAsExpected() {
		t.Fatal("the sample holds unexpected cells")
	}
	byScenario := map[string]Result{}
	for _, r := range run.Results {
		byScenario[r.Variant+"/"+r.Scenario] = r
	}
	cases := map[string]string{
		"baseline/reopen-after-restart":  "FAIL (expected)",
		"baseline/reregister-no-restart": "PASS (UNEXPECTED, want FAIL)",
		"v2/close-all-race":              "CRASH (known issue)",
		"v2/smoke-passthrough":           "FLAKY (UNEXPECTED, want PASS)",
		"v9/smoke-passthrough":           "SKIP (UNEXPECTED, want PASS)",
	}
	for k, want := range cases {
		r := byScenario[k]
		if got := r.Cell(); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	// A known issue that stops reproducing is reported; a cell that could
	// not be tested says only what it wanted.
	for _, c := range []struct {
		r    Result
		want string
	}{
		{Result{Verdict: verdict.Pass, Expected: verdict.Crash, KnownIssue: "race"}, "PASS (UNEXPECTED: known issue CRASH no longer reproduces)"},
		{Result{Verdict: verdict.Skip, Expected: verdict.Crash, KnownIssue: "race"}, "SKIP (UNEXPECTED, want CRASH)"},
		{Result{Verdict: verdict.Infra, Expected: verdict.Crash, KnownIssue: "race"}, "INFRA (UNEXPECTED, want CRASH)"},
	} {
		if got := c.r.Cell(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.r, got, c.want)
		}
	}
	ok := &Run{Results: []Result{{Verdict: verdict.Pass, Expected: verdict.Pass, AsExpected: true}}}
	if !ok.AllAsExpected() || (&Run{}).AllAsExpected() {
		t.Error("AllAsExpected")
	}
}

func TestRunsOf(t *testing.T) {
	one := Result{Verdict: verdict.Fail}
	if same, total := one.RunsOf(verdict.Fail); same != 1 || total != 1 {
		t.Errorf("one run: %d of %d", same, total)
	}
	flaky := Result{Verdict: verdict.Flaky, Runs: []verdict.Verdict{verdict.Fail, verdict.Pass, verdict.Fail}}
	if same, total := flaky.RunsOf(verdict.Fail); same != 2 || total != 3 {
		t.Errorf("repeats: %d of %d", same, total)
	}
}

func TestReadRunRefusesAnotherSchema(t *testing.T) {
	dir := t.TempDir()
	run := &Run{Results: []Result{{Scenario: "a", Verdict: verdict.Pass}}}
	if err := run.WriteJSON(filepath.Join(dir, ResultsFile)); err != nil {
		t.Fatal(err)
	}
	got, back, err := ReadRun(dir)
	if err != nil || got != dir || len(back.Results) != 1 || back.Results[0].Scenario != "a" {
		t.Fatalf("ReadRun(%s) = %s, %+v, %v", dir, got, back, err)
	}
	os.WriteFile(filepath.Join(dir, ResultsFile), []byte(`{"schema": 99}`), 0o644)
	if _, _, err := ReadRun(dir); err == nil || !strings.Contains(err.Error(), "schema 99") {
		t.Errorf("another schema: %v", err)
	}
}
