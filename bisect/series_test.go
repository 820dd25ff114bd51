package bisect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"fusevm/report"
	"fusevm/verdict"
)

// fakeSeries is a series environment: for each version, the verdict of
// each scenario with its first k patches (outcome[version][k]; the last
// entry is the whole version), and its expectation.
type fakeSeries struct {
	expected map[string]verdict.Verdict
	// outcome[v][k][scenario]; "" stands for the expected verdict.
	outcome [][]map[string]verdict.Verdict
	// infra makes these (version, patches) targets INFRA.
	infra map[[2]int]bool
	calls []string
	err   error
}

func (f *fakeSeries) Test(_ context.Context, version, patches int, names []string) ([]report.Result, error) {
	f.calls = append(f.calls, fmt.Sprintf("%d/%d%v", version, patches, names))
	if f.err != nil {
		return nil, f.err
	}
	k := patches
	if k < 0 {
		k = len(f.outcome[version]) - 1
	}
	if names == nil {
		names = slices.Sorted(maps.Keys(f.expected))
	}
	var rs []report.Result
	for _, n := range names {
		r := report.Result{Scenario: n, Expected: f.expected[n], Verdict: f.outcome[version][k][n]}
		if r.Verdict == "" {
			r.Verdict = r.Expected
		}
		if f.infra[[2]int{version, patches}] {
			r.Verdict, r.Reason = verdict.Infra, "QEMU failed"
		}
		r.AsExpected = r.Verdict == r.Expected
		rs = append(rs, r)
	}
	return rs, nil
}

func (f *fakeSeries) Excerpt(r report.Result) string { return "excerpt of " + r.Scenario }

func versions(n ...int) []Version {
	var out []Version
	for i, count := range n {
		v := Version{Name: fmt.Sprintf("v%d", i+1)}
		for p := 1; p <= count; p++ {
			v.Patches = append(v.Patches, fmt.Sprintf("%04d-p.patch", p))
		}
		out = append(out, v)
	}
	return out
}

// ok is a prefix where every scenario gives its expected verdict.
var ok = map[string]verdict.Verdict{}

func TestSeriesSearchFindsThePatch(t *testing.T) {
	// v1 and v2 are fine; v3's third patch (of four) breaks the leak check.
	leak := map[string]verdict.Verdict{"leak": verdict.Fail}
	f := &fakeSeries{
		expected: map[string]verdict.Verdict{"leak": verdict.Pass, "smoke": verdict.Pass},
		outcome: [][]map[string]verdict.Verdict{
			{ok, ok, ok},
			{ok, ok, ok},
			{ok, ok, ok, leak, leak},
		},
	}
	var tried []SeriesTry
	s := &SeriesSearch{Policy: Policy{Runs: 1}, Kernel: "debian:7.3", Versions: versions(2, 2, 4), Tester: f, Tried: func(t SeriesTry) { tried = append(tried, t) }}
	rep, err := s.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.BadVersion != "v3" || !reflect.DeepEqual(rep.Culprit, []string{"0003-p.patch"}) || !reflect.DeepEqual(rep.Scenarios, []string{"leak"}) {
		t.Fatalf("bad version %q culprit %v scenarios %v", rep.BadVersion, rep.Culprit, rep.Scenarios)
	}
	if rep.Before["leak"] != "PASS (expected)" || rep.After["leak"] != "FAIL (UNEXPECTED, want PASS)" || rep.Excerpt != "excerpt of leak" {
		t.Errorf("before %v after %v excerpt %q", rep.Before, rep.After, rep.Excerpt)
	}
	// Versions in order, then only the scenarios that went wrong on
	// prefixes, by bisection (2, then 3).
	want := []string{"0/-1[]", "1/-1[]", "2/-1[]", "2/2[leak]", "2/3[leak]"}
	if !reflect.DeepEqual(f.calls, want) {
		t.Errorf("calls %v, want %v", f.calls, want)
	}
	if len(tried) != len(rep.Tries) || tried[3].Patches != 2 || tried[3].Class != "good" || tried[4].Class != "bad" {
		t.Errorf("tries %+v", rep.Tries)
	}
	var b bytes.Buffer
	if err := rep.WriteText(&b); err != nil || !strings.Contains(b.String(), "first bad patch:   0003-p.patch") || !strings.Contains(b.String(), "leak: before PASS (expected), after FAIL (UNEXPECTED, want PASS)") {
		t.Errorf("text report:\n%s", b.String())
	}
}

func TestSeriesSearchEdges(t *testing.T) {
	bad := map[string]verdict.Verdict{"s": verdict.Crash}
	exp := map[string]verdict.Verdict{"s": verdict.Pass}
	cases := []struct {
		name    string
		outcome [][]map[string]verdict.Verdict
		infra   map[[2]int]bool
		counts  []int
		version string
		culprit []string
		before  string
		text    string
	}{
		{"no regression", [][]map[string]verdict.Verdict{{ok, ok}, {ok, ok}}, nil, []int{1, 1}, "", nil, "",
			"no version turns an expected result unexpected"},
		{"first patch of the first version", [][]map[string]verdict.Verdict{{ok, bad, bad}}, nil, []int{2}, "v1", []string{"0001-p.patch"},
			"the base without the series (assumed good)", "first bad patch:   0001-p.patch"},
		{"last patch", [][]map[string]verdict.Verdict{{ok, ok, ok, bad}}, nil, []int{3}, "v1", []string{"0003-p.patch"},
			"PASS (expected)", "first bad patch:   0003-p.patch"},
		{"an INFRA version is stepped over", [][]map[string]verdict.Verdict{{ok, ok}, {ok, bad}}, map[[2]int]bool{{0, -1}: true}, []int{1, 1}, "v2", []string{"0001-p.patch"},
			"the base without the series (assumed good)", "first bad patch:   0001-p.patch"},
		{"an INFRA prefix hides the boundary", [][]map[string]verdict.Verdict{{ok, ok, bad, bad}}, map[[2]int]bool{{0, 2}: true}, []int{3}, "v1", []string{"0002-p.patch", "0003-p.patch"},
			"", "the culprit is one of 0002-p.patch, 0003-p.patch"},
	}
	for _, c := range cases {
		f := &fakeSeries{expected: exp, outcome: c.outcome, infra: c.infra}
		rep, err := (&SeriesSearch{Policy: Policy{Runs: 1}, Versions: versions(c.counts...), Tester: f}).Run(context.Background())
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var b bytes.Buffer
		rep.WriteText(&b)
		if rep.BadVersion != c.version || !reflect.DeepEqual(rep.Culprit, c.culprit) || !strings.Contains(b.String(), c.text) {
			t.Errorf("%s: version %q culprit %v\n%s", c.name, rep.BadVersion, rep.Culprit, b.String())
		}
		if got := rep.Before["s"] + rep.Before[""]; got != c.before {
			t.Errorf("%s: before %q, want %q", c.name, got, c.before)
		}
	}
}

// TestSeriesSearchError stops at the tester's error and keeps the tries.
func TestSeriesSearchError(t *testing.T) {
	f := &fakeSeries{expected: map[string]verdict.Verdict{"s": verdict.Pass}, outcome: [][]map[string]verdict.Verdict{{ok, ok}}, err: errors.New("no such series")}
	rep, err := (&SeriesSearch{Policy: Policy{Runs: 1}, Versions: versions(1), Tester: f}).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no such series") || rep == nil || len(rep.Tries) != 1 || rep.Tries[0].Class != "skip" {
		t.Errorf("report %+v, error %v", rep, err)
	}
}

func TestJudge(t *testing.T) {
	r := func(s string, v, want verdict.Verdict, reason string) report.Result {
		return report.Result{Scenario: s, Verdict: v, Expected: want, AsExpected: v == want, Reason: reason}
	}
	cases := []struct {
		rs   []report.Result
		want Run
	}{
		{[]report.Result{r("a", verdict.Pass, verdict.Pass, ""), r("b", verdict.Fail, verdict.Fail, "")}, Run{}},
		{[]report.Result{r("a", verdict.Fail, verdict.Pass, ""), r("b", verdict.Pass, verdict.Fail, "")}, Run{Failed: true, Detail: "a FAIL (want PASS); b PASS (want FAIL)"}},
		{[]report.Result{r("a", verdict.Fail, verdict.Pass, ""), r("b", verdict.Infra, verdict.Pass, "QEMU failed")}, Run{Skip: true, Detail: "INFRA: QEMU failed"}},
		{[]report.Result{r("a", verdict.Skip, verdict.Pass, "patch 0001 does not apply")}, Run{Skip: true, Detail: "patch 0001 does not apply"}},
	}
	for _, c := range cases {
		if got := Judge(c.rs); got != c.want {
			t.Errorf("%+v: %+v, want %+v", c.rs, got, c.want)
		}
	}
}

// gitRepo makes a repository with one commit and returns its directory.
func gitRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=x", "-c", "user.email=x@x"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	run("init", "-q")
	os.WriteFile(filepath.Join(dir, "f"), []byte("one\n"), 0o644)
	run("add", "f")
	run("commit", "-q", "-m", "fuse: the change")
	return dir
}

func TestRevision(t *testing.T) {
	ctx := context.Background()
	repo := gitRepo(t)
	c, err := Revision(ctx, repo, false)
	if err != nil || len(c.Hash) != 40 || c.Subject != "fuse: the change" || c.Repo != repo {
		t.Fatalf("clean HEAD: %+v %v", c, err)
	}
	os.WriteFile(filepath.Join(repo, "f"), []byte("two\n"), 0o644)
	if _, err := Revision(ctx, repo, false); err == nil || !strings.Contains(err.Error(), "uncommitted changes") {
		t.Errorf("dirty tree: %v", err)
	}
	if d, err := Revision(ctx, repo, true); err != nil || d.Hash != c.Hash {
		t.Errorf("dirty tree allowed: %+v %v", d, err)
	}
	// Under git bisect start --no-checkout, BISECT_HEAD is tested, dirty
	// or not.
	os.WriteFile(filepath.Join(repo, ".git", "BISECT_HEAD"), []byte(c.Hash+"\n"), 0o644)
	if d, err := Revision(ctx, repo, false); err != nil || d.Hash != c.Hash {
		t.Errorf("BISECT_HEAD: %+v %v", d, err)
	}
	notRepo := t.TempDir()
	if _, err := Revision(ctx, notRepo, false); err == nil || !strings.Contains(err.Error(), notRepo+" is not a git repository: git rev-parse --absolute-git-dir: exit status") || !strings.Contains(err.Error(), "not a git repository") {
		t.Errorf("not a repository: %v", err)
	}
	bare := filepath.Join(t.TempDir(), "b.git")
	exec.Command("git", "clone", "-q", "--bare", repo, bare).Run()
	if _, err := Revision(ctx, bare, false); err == nil || !strings.Contains(err.Error(), "has no work tree") {
		t.Errorf("bare repository: %v", err)
	}
}

func TestAppendLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bisect", "linux.jsonl")
	for _, class := range []string{"good", "bad"} {
		if err := AppendLog(path, StepRecord{Commit: "abc", Class: class, Runs: []Run{{Failed: class == "bad"}}}); err != nil {
			t.Fatal(err)
		}
	}
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"class":"good"`) || !strings.Contains(lines[1], `"failed":true`) {
		t.Errorf("log:\n%s", data)
	}
}
