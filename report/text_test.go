package report

import (
	"bytes"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"fusevm/verdict"
)

// textRun is ktapRun with what a real run records for the reproduce
// commands: boot files, run arguments, a build log copy.
func textRun() *Run {
	run := ktapRun()
	run.Command = []string{"fusevm", "matrix", "--configs", "base,base+debug"}
	for i := range run.Kernels {
		k := &run.Kernels[i]
		k.RunArgs = []string{"--kernel", "debian:7.3", "--config", k.Config}
		if k.Variant != "baseline" {
			k.Series = "patches/fuse-passthrough-recovery/7.3/" + k.Variant
			k.RunArgs = append(k.RunArgs, "--series", k.Series)
		}
		if k.BuildError == "" {
			k.Boot = &Boot{Kernel: "/c/kernels/k1/bzImage", Vmlinux: "/c/kernels/k1/vmlinux", Initramfs: "/c/initramfs/ab.cpio", Cmdline: "console=ttyS0 panic=-1"}
		} else {
			k.BuildLog = "/r/debian-7.3_v9_base/build.log"
			k.BuildLogTail = "  CC      fs/fuse/dev.o\nfs/fuse/dev.c:12:1: error: expected ';'\nmake[2]: *** [fs/fuse/dev.o] Error 1\n"
		}
	}
	for i := range run.Results {
		run.Results[i].Accel = "tcg"
	}
	return run
}

func TestTextReport(t *testing.T) {
	run := textRun()
	var b bytes.Buffer
	if err := run.WriteText(&b, TextOptions{Dir: "/r", TestedBy: "A U Thor <author@example.org>"}); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.txt", b.Bytes())
	text := b.String()
	for i, l := range strings.Split(text, "\n") {
		if len(l) > Width {
			t.Errorf("line %d is %d columns: %q", i+1, len(l), l)
		}
	}
	for _, want := range []string{
		"fusevm repro /r debian:7.3/v2@base+debug/smoke-passthrough --count 5",
		"fusevm run --kernel debian:7.3 --config base --series",
		"fs/fuse/backing.c:184",
		"build log: /r/debian-7.3_v9_base/build.log",
		"debian:7.3 v8: SKIP in 2 scenarios (smoke-passthrough,\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(text, "Tested-by:") {
		t.Error("a Tested-by: line although results are not as expected")
	}

	ok := &Run{Kernels: run.Kernels[:1], Started: run.Started, Finished: run.Finished}
	for _, r := range run.Results {
		if r.AsExpected && r.Variant == "baseline" {
			ok.Results = append(ok.Results, r)
		}
	}
	b.Reset()
	ok.WriteText(&b, TextOptions{Dir: "/r", TestedBy: "A U Thor <author@example.org>"})
	if !strings.HasSuffix(b.String(), "\nTested-by: A U Thor <author@example.org>\n") || strings.Contains(b.String(), "Not as expected") {
		t.Errorf("all as expected: want a Tested-by: line and no unexpected section:\n%s", b.String())
	}
	b.Reset()
	ok.WriteText(&b, TextOptions{})
	if strings.Contains(b.String(), "Tested-by:") {
		t.Error("Tested-by: without a tester")
	}
}

func TestSummaryTable(t *testing.T) {
	var b bytes.Buffer
	textRun().WriteSummary(&b)
	golden(t, "summary-matrix.txt", b.Bytes())
	text := b.String()
	if strings.Contains(text, ":\n\n") || strings.HasSuffix(text, ":\n") {
		t.Errorf("an empty heading:\n%s", text)
	}
	for i, l := range strings.Split(text, "\n") {
		if len(l) > Width {
			t.Errorf("line %d is %d columns: %q", i+1, len(l), l)
		}
	}
	// All as expected: the table, no "not as expected" heading.
	run := &Run{Results: []Result{{Kernel: "k", Variant: "baseline", Scenario: "s", Verdict: verdict.Pass, Expected: verdict.Pass, AsExpected: true}}}
	b.Reset()
	run.WriteSummary(&b)
	if b.String() != "scenario  baseline\ns         PASS\n" {
		t.Errorf("summary of one expected PASS:\n%q", b.String())
	}
}

// TestTableTooWide numbers the columns when their names do not fit.
func TestTableTooWide(t *testing.T) {
	run := &Run{}
	for _, k := range []string{"debian-7.3", "debian-7.2", "debian-6.12"} {
		for _, v := range []string{"baseline", "v2-patch2-only"} {
			run.Results = append(run.Results, Result{Kernel: k, Variant: v, Config: "base+debug", Scenario: "smoke-passthrough", Verdict: verdict.Pass, Expected: verdict.Pass, AsExpected: true})
		}
	}
	var b bytes.Buffer
	run.WriteTable(&b, 0, Width)
	text := b.String()
	if !strings.Contains(text, "scenario           [1]   [2]") || !strings.Contains(text, "[6] debian-6.12 v2-patch2-only (base+debug)") {
		t.Errorf("table:\n%s", text)
	}
	for _, l := range strings.Split(text, "\n") {
		if len(l) > Width {
			t.Errorf("%q is wider than %d", l, Width)
		}
	}
}

func TestFindCell(t *testing.T) {
	run := textRun()
	for id, want := range map[string]string{
		"debian:7.3/v2@base+debug/close-all-race": "debian:7.3/v2@base+debug/close-all-race",
		"v2@base+debug/smoke-passthrough":         "debian:7.3/v2@base+debug/smoke-passthrough",
		"stale-id":                                "debian:7.3/v3/stale-id",
		"baseline/reregister-no-restart":          "debian:7.3/baseline/reregister-no-restart",
	} {
		r, err := run.FindCell(id)
		if err != nil || r.CellID() != want {
			t.Errorf("FindCell(%q) = %v, %v; want %s", id, r, err, want)
		}
	}
	if _, err := run.FindCell("smoke-passthrough"); err == nil || !strings.Contains(err.Error(), "ambiguous") {
		t.Errorf("an ambiguous cell: %v", err)
	}
	if _, err := run.FindCell("v7/nothing"); err == nil || !strings.Contains(err.Error(), "debian:7.3/v3/stale-id") {
		t.Errorf("an unknown cell: %v, want the list of cells", err)
	}
	r, _ := run.FindCell("stale-id")
	if k := run.KernelOf(r); k == nil || k.Variant != "v3" {
		t.Errorf("KernelOf(stale-id) = %+v", k)
	}
}

// TestJUnitSkipAndError: SKIP is <skipped>, INFRA <error>, with the
// reason; only other unexpected results are failures.
func TestJUnitSkipAndError(t *testing.T) {
	var b bytes.Buffer
	if err := textRun().WriteJUnit(&b); err != nil {
		t.Fatal(err)
	}
	var doc junitSuites
	if err := xml.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	counts := map[string][3]int{}
	for _, s := range doc.Suites {
		counts[s.Name] = [3]int{s.Failures, s.Errors, s.Skipped}
		for _, c := range s.Cases {
			switch {
			case c.Skipped != nil:
				got[s.Name+"/"+c.Name] = "skipped: " + c.Skipped.Message + "|" + c.Skipped.Body
			case c.Error != nil:
				got[s.Name+"/"+c.Name] = "error: " + c.Error.Message
			case c.Failure != nil:
				got[s.Name+"/"+c.Name] = "failure: " + c.Failure.Message
			default:
				got[s.Name+"/"+c.Name] = "ok"
			}
		}
	}
	for k, want := range map[string]string{
		"debian:7.3 v9/smoke-passthrough":       "skipped: patch 0001-x.patch does not apply",
		"debian:7.3 v3/stale-id":                "error: INFRA: VM: qemu: could not open kernel file",
		"debian:7.3 v3/leak-after-restart":      "failure: HANG, want PASS",
		"debian:7.3 baseline/smoke-passthrough": "ok",
		"debian:7.3 v3/close-all-race":          "ok",
	} {
		if !strings.HasPrefix(got[k], want) {
			t.Errorf("%s: %q, want %q", k, got[k], want)
		}
	}
	if !strings.Contains(got["debian:7.3 v9/smoke-passthrough"], "build log: /r/debian-7.3_v9_base/build.log\n  CC      fs/fuse/dev.o") {
		t.Errorf("the skipped build's case lacks the build log: %q", got["debian:7.3 v9/smoke-passthrough"])
	}
	if c := counts["debian:7.3 v3"]; c != [3]int{2, 1, 0} {
		t.Errorf("v3 failures/errors/skipped = %v, want [2 1 0]", c)
	}
	if c := counts["debian:7.3 v8"]; c != [3]int{0, 0, 2} {
		t.Errorf("v8 failures/errors/skipped = %v, want [0 0 2]", c)
	}
}

// TestGitTester reads the tester from git's configuration, and gives none
// without a name or an email.
func TestGitTester(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	dir := t.TempDir()
	t.Chdir(dir) // no repository's configuration
	t.Setenv("HOME", dir)
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	config := filepath.Join(dir, "gitconfig")
	t.Setenv("GIT_CONFIG_GLOBAL", config)
	for _, c := range []struct{ config, want string }{
		{"[user]\n\tname = A U Thor\n\temail = author@example.org\n", "A U Thor <author@example.org>"},
		{"[user]\n\tname = A U Thor\n", ""},
		{"[user]\n\temail = author@example.org\n", ""},
		{"", ""},
	} {
		if err := os.WriteFile(config, []byte(c.config), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := GitTester(); got != c.want {
			t.Errorf("config %q: GitTester() = %q, want %q", c.config, got, c.want)
		}
	}
}
