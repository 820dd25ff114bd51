package main

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"fusevm/report"
	"fusevm/verdict"
)

func TestReorder(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.String("out", "", "")
	fs.Bool("v", false, "")
	fs.Int("count", 1, "")
	for _, c := range []struct{ in, want []string }{
		{[]string{"v2", "v3", "my-v4", "--out", "dir"}, []string{"--out", "dir", "--", "v2", "v3", "my-v4"}},
		{[]string{"--out", "dir", "v2"}, []string{"--out", "dir", "--", "v2"}},
		{[]string{"a", "-v", "b", "--count=3", "c"}, []string{"-v", "--count=3", "--", "a", "b", "c"}},
		{[]string{"a", "--", "--out", "b"}, []string{"--", "a", "--out", "b"}},
		{[]string{"a", "--nosuch", "b"}, []string{"--nosuch", "--", "a", "b"}},
	} {
		if got := reorder(fs, c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("reorder(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	fs.Parse(reorder(fs, []string{"v2", "--out", "d", "-v", "v3"}))
	if fs.Lookup("out").Value.String() != "d" || fs.Lookup("v").Value.String() != "true" || !reflect.DeepEqual(fs.Args(), []string{"v2", "v3"}) {
		t.Errorf("parsed: out %v v %v args %q", fs.Lookup("out").Value, fs.Lookup("v").Value, fs.Args())
	}
}

// TestFlagsAfterOperands: every command takes flags after its operands;
// bisect series names the flag that gives a new posting its claims.
func TestFlagsAfterOperands(t *testing.T) {
	cache := t.TempDir()
	my := filepath.Join(t.TempDir(), "my-v4")
	os.MkdirAll(my, 0o755)
	src := filepath.Join("..", "..", "patches", "fuse-passthrough-recovery", "7.3", "v3")
	ents, _ := os.ReadDir(src)
	for _, e := range ents {
		data, _ := os.ReadFile(filepath.Join(src, e.Name()))
		os.WriteFile(filepath.Join(my, e.Name()), data, 0o644)
	}
	v2 := filepath.Join("..", "..", "patches", "fuse-passthrough-recovery", "7.3", "v2")
	code, _, stderr := fusevm(t, "bisect", "series", v2, my, "--out", t.TempDir(), "--cache", cache)
	if code != exitUsage || !strings.Contains(stderr, "--claims my-v4=CLAIM") || strings.Contains(stderr, "--out") {
		t.Errorf("bisect series without claims: exit %d, %s", code, stderr)
	}
	code, _, stderr = fusevm(t, "bisect", "series", v2, my, "--claims", "my-v9=close_all_ioctl", "--cache", cache)
	if code != exitUsage || !strings.Contains(stderr, "no version my-v9") {
		t.Errorf("bisect series with claims for no version: exit %d, %s", code, stderr)
	}
	code, _, stderr = fusevm(t, "scenarios", "smoke-passthrough", "--bogus")
	if code != exitUsage || !strings.Contains(stderr, "flag provided but not defined: -bogus") {
		t.Errorf("scenarios NAME --bogus: exit %d, %s", code, stderr)
	}
	code, _, stderr = fusevm(t, "run", "extra", "--cache", cache)
	if code != exitUsage || !strings.Contains(stderr, `run: unexpected argument "extra"`) {
		t.Errorf("run with an operand: exit %d, %s", code, stderr)
	}
}

// resultsDir writes a results directory for a run.
func resultsDir(t *testing.T, run *report.Run) string {
	t.Helper()
	dir := t.TempDir()
	if err := run.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func sampleResults(allOK bool) *report.Run {
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	run := &report.Run{Started: t0, Finished: t0.Add(time.Minute), Command: []string{"fusevm", "run"}}
	run.Kernels = []report.Kernel{{Name: "debian-7.3", Spec: "debian:7.3", Variant: "baseline", Config: "base", Identity: "debian linux-source-7.3 7.3.4-1~bpo13+1", RunArgs: []string{"--kernel", "debian:7.3"}}}
	run.Results = []report.Result{
		{Kernel: "debian-7.3", Variant: "baseline", Config: "base", Scenario: "smoke-passthrough", Verdict: verdict.Pass, Expected: verdict.Pass, AsExpected: true, Accel: "tcg"},
		{Kernel: "debian-7.3", Variant: "baseline", Config: "base", Scenario: "leak-after-restart", Verdict: verdict.Fail, Expected: verdict.Fail, AsExpected: true, Accel: "tcg", Reason: "line 12: free-space: got error"},
	}
	if !allOK {
		run.Results[0].Verdict, run.Results[0].AsExpected, run.Results[0].Reason = verdict.Crash, false, "kernel report: WARNING in fuse_backing_close"
	}
	return run
}

// runIn runs the CLI in dir with git's configuration from gitconfig.
func runIn(t *testing.T, dir, gitconfig string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(fusevmBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL="+gitconfig, "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
	return runCmd(t, cmd)
}

// TestReportCommand: the text report of a results directory, with a
// Tested-by: line from git's user.name and user.email only when every
// result is as expected.
func TestReportCommand(t *testing.T) {
	gitconfig := filepath.Join(t.TempDir(), "gitconfig")
	os.WriteFile(gitconfig, []byte("[user]\n\tname = A U Thor\n\temail = author@example.org\n"), 0o644)
	cwd := t.TempDir()

	ok := resultsDir(t, sampleResults(true))
	code, stdout, stderr := runIn(t, cwd, gitconfig, "report", ok)
	if code != exitOK || !strings.HasSuffix(stdout, "\nTested-by: A U Thor <author@example.org>\n") || !strings.Contains(stdout, "all 2 results as expected") {
		t.Errorf("report, all as expected: exit %d\n%s%s", code, stdout, stderr)
	}
	for i, l := range strings.Split(stdout, "\n") {
		if len(l) > 80 {
			t.Errorf("line %d is %d columns", i+1, len(l))
		}
	}
	bad := resultsDir(t, sampleResults(false))
	code, stdout, _ = runIn(t, cwd, gitconfig, "report", filepath.Join(bad, "results.json"))
	if code != exitOK || strings.Contains(stdout, "Tested-by:") || !strings.Contains(stdout, "fusevm run --kernel debian:7.3 --scenarios smoke-passthrough") {
		t.Errorf("report, unexpected results:\n%s", stdout)
	}
	if !strings.Contains(stdout, "1. debian-7.3 baseline / smoke-passthrough: CRASH, want PASS") {
		t.Errorf("report lacks the unexpected cell:\n%s", stdout)
	}
	// No git identity: no Tested-by line; --tested-by gives one.
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, nil, 0o644)
	if _, stdout, _ := runIn(t, cwd, empty, "report", ok); strings.Contains(stdout, "Tested-by:") {
		t.Errorf("a Tested-by: line without a git identity")
	}
	if _, stdout, _ := runIn(t, cwd, empty, "report", ok, "--tested-by", "B <b@example.org>"); !strings.Contains(stdout, "Tested-by: B <b@example.org>") {
		t.Errorf("--tested-by after the operand:\n%s", stdout)
	}
	if code, _, stderr := runIn(t, cwd, empty, "report", t.TempDir()); code != exitUsage || !strings.Contains(stderr, "results.json") {
		t.Errorf("report of a directory without results: exit %d, %s", code, stderr)
	}
}

// TestReproUsage: repro names the cells it knows, and refuses a cell
// whose variant never booted.
func TestReproUsage(t *testing.T) {
	dir := resultsDir(t, sampleResults(false))
	code, _, stderr := fusevm(t, "repro", dir, "nosuch", "--cache", t.TempDir())
	if code != exitUsage || !strings.Contains(stderr, "debian-7.3/baseline/smoke-passthrough") {
		t.Errorf("repro of an unknown cell: exit %d, %s", code, stderr)
	}
	code, _, stderr = fusevm(t, "repro", dir, "baseline/smoke-passthrough", "--cache", t.TempDir(), "--out", t.TempDir())
	if code != exitFail || !strings.Contains(stderr, "cannot be booted again") || !strings.Contains(stderr, "fusevm run --kernel debian:7.3") {
		t.Errorf("repro without a boot record: exit %d, %s", code, stderr)
	}
	code, _, stderr = fusevm(t, "repro", dir)
	if code != exitUsage || !strings.Contains(stderr, "want RESULTS CELL") {
		t.Errorf("repro without a cell: exit %d, %s", code, stderr)
	}
}

func TestShellUsage(t *testing.T) {
	code, _, stderr := fusevm(t, "shell", "--gdb", "--gdb-port", "0", "--cache", t.TempDir())
	if code != exitUsage || !strings.Contains(stderr, "--gdb-port 0") {
		t.Errorf("shell --gdb-port 0: exit %d, %s", code, stderr)
	}
	code, _, stderr = fusevm(t, "shell", "--scenarios", "no-such", "--cache", t.TempDir())
	if code != exitUsage || !strings.Contains(stderr, `unknown scenario "no-such"`) {
		t.Errorf("shell with an unknown scenario: exit %d, %s", code, stderr)
	}
}
