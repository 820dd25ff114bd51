package bisect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"fusevm/report"
	"fusevm/verdict"
)

func TestCommitNames(t *testing.T) {
	c := Commit{Repo: "/src/linux.git", Hash: "0123456789abcdef0123456789abcdef01234567", Subject: "fuse: x"}
	if got := c.Spec(); got != "git:/src/linux.git@0123456789abcdef0123456789abcdef01234567" {
		t.Errorf("Spec() = %q", got)
	}
	if got := c.Short(); got != "0123456789ab" {
		t.Errorf("Short() = %q", got)
	}
	if got, want := DefaultLog("/cache", c), filepath.Join("/cache", "bisect", "linux.jsonl"); got != want {
		t.Errorf("DefaultLog = %q, want %q", got, want)
	}
	c.Repo = "/src/linux"
	if got, want := DefaultLog("/cache", c), filepath.Join("/cache", "bisect", "linux.jsonl"); got != want {
		t.Errorf("DefaultLog of a work tree = %q, want %q", got, want)
	}
}

// TestCommitStep runs a step against fake results: the failure is
// confirmed by the extra runs, the commit is bad (good when finding a
// fix), and the step is logged and told in one line.
func TestCommitStep(t *testing.T) {
	fail := []report.Result{{Scenario: "stale-id", Verdict: verdict.Fail, Expected: verdict.Pass}}
	for _, findFix := range []bool{false, true} {
		log := filepath.Join(t.TempDir(), "bisect", "linux.jsonl")
		calls := 0
		s := &CommitStep{
			Commit:  Commit{Repo: "/src/linux", Hash: "0123456789abcdef0123456789abcdef01234567", Subject: "fuse: x"},
			Policy:  Policy{Runs: 1, Confirm: 2},
			FindFix: findFix,
			Log:     log,
			Test: func(context.Context) ([]report.Result, error) {
				calls++
				return fail, nil
			},
		}
		res, err := s.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		wantExit := 1
		if findFix {
			wantExit = 0
		}
		r := res.Record
		if calls != 3 || r.Class != "bad" || r.Exit != wantExit || len(r.Runs) != 3 || r.Commit != s.Commit.Hash || r.Subject != "fuse: x" || res.Log != log {
			t.Errorf("find fix %v: %d calls, %+v", findFix, calls, res)
		}
		data, _ := os.ReadFile(log)
		var back StepRecord
		if err := json.Unmarshal(data, &back); err != nil || back.Class != "bad" || back.Exit != wantExit || len(back.Runs) != 3 {
			t.Errorf("find fix %v: log %s: %v", findFix, data, err)
		}
		res.Took = 1234 * time.Millisecond
		want := `bisect-step 0123456789ab "fuse: x": bad (exit ` + string(rune('0'+wantExit)) + `) after 3 run(s) in 1.2s stale-id FAIL (want PASS)`
		if got := res.String(); got != want {
			t.Errorf("line:\n%s\nwant\n%s", got, want)
		}
	}

	// A test that cannot run is no step: nothing is logged.
	log := filepath.Join(t.TempDir(), "steps.jsonl")
	s := &CommitStep{Commit: Commit{Hash: "0123456789abcdef"}, Policy: Policy{Runs: 1}, Log: log,
		Test: func(context.Context) ([]report.Result, error) { return nil, errors.New("no VM") }}
	if _, err := s.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "no VM") {
		t.Errorf("failing test: %v", err)
	}
	if _, err := os.Stat(log); !os.IsNotExist(err) {
		t.Errorf("a log after a failed step: %v", err)
	}
}

// TestSeriesReportWriteFiles writes bisect.json, which reads back as the
// report, and bisect.txt, which is its text.
func TestSeriesReportWriteFiles(t *testing.T) {
	dir := t.TempDir()
	rep := &SeriesReport{Kernel: "debian:7.3", Versions: []string{"v1", "v2"},
		Tries:      []SeriesTry{{Version: "v1", Patches: -1, Class: "good"}, {Version: "v2", Patches: -1, Class: "bad", Detail: "stale-id FAIL (want PASS)"}},
		BadVersion: "v2", Scenarios: []string{"stale-id"}}
	before := time.Now()
	txt, err := rep.WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	if txt != filepath.Join(dir, "bisect.txt") || rep.Finished.Before(before) {
		t.Errorf("path %s, finished %v", txt, rep.Finished)
	}
	var back SeriesReport
	data, _ := os.ReadFile(filepath.Join(dir, "bisect.json"))
	if err := json.Unmarshal(data, &back); err != nil || !back.Finished.Equal(rep.Finished) || back.BadVersion != "v2" || !reflect.DeepEqual(back.Tries, rep.Tries) {
		t.Errorf("bisect.json: %v\n%s", err, data)
	}
	var want bytes.Buffer
	rep.WriteText(&want)
	if got, _ := os.ReadFile(txt); string(got) != want.String() || !strings.Contains(string(got), "first bad version: v2") {
		t.Errorf("bisect.txt:\n%s\nwant\n%s", got, want.String())
	}
	if _, err := rep.WriteFiles(filepath.Join(dir, "nosuch")); err == nil {
		t.Error("no error writing into a missing directory")
	}
}
