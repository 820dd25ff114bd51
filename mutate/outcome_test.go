package mutate

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"fusevm/report"
	"fusevm/verdict"
)

func cell(scenario string, v verdict.Verdict, asExpected bool, reason string) report.Result {
	return report.Result{Scenario: scenario, Verdict: v, Expected: verdict.Pass, AsExpected: asExpected, Reason: reason}
}

func TestClassify(t *testing.T) {
	m := Mutant{ID: "fs/fuse/backing.c:195:delete-statement", Operator: "delete-statement"}
	equiv := map[string]string{m.ID: "debug output only"}
	pass := func(s string) report.Result { return cell(s, verdict.Pass, true, "") }
	cases := []struct {
		name  string
		k     report.Kernel
		rs    []report.Result
		equiv map[string]string
		want  Outcome
	}{{
		name: "killed",
		rs:   []report.Result{pass("a"), cell("b", verdict.Fail, false, "step 3: EIO"), cell("(boot)", verdict.Crash, false, "")},
		want: Outcome{State: Killed, Killers: []string{"b", "(boot)"}, Reason: "b: FAIL (step 3: EIO)", Scenarios: []string{"a", "b", "(boot)"}},
	}, {
		name:  "killed although listed as equivalent, and INFRA elsewhere",
		rs:    []report.Result{cell("a", verdict.Infra, false, "qemu"), cell("b", verdict.Hang, false, "timeout")},
		equiv: equiv,
		want:  Outcome{State: Killed, Killers: []string{"b"}, Reason: "b: HANG (timeout)", Scenarios: []string{"b"}, Listed: true},
	}, {
		name: "survived",
		rs:   []report.Result{pass("a"), pass("b"), cell("c", verdict.Skip, true, "not for this variant")},
		want: Outcome{State: Survived, Scenarios: []string{"a", "b"}},
	}, {
		name:  "equivalent",
		rs:    []report.Result{pass("a")},
		equiv: equiv,
		want:  Outcome{State: Equivalent, Reason: "debug output only", Scenarios: []string{"a"}},
	}, {
		name: "not built: build error",
		k:    report.Kernel{BuildError: "patch mutant-x.patch does not apply"},
		rs:   []report.Result{cell("a", verdict.Skip, false, "build failed")},
		want: Outcome{State: NotBuilt, Reason: "patch mutant-x.patch does not apply"},
	}, {
		name: "not built: every cell skipped",
		rs:   []report.Result{cell("a", verdict.Skip, false, "kernel did not build"), cell("b", verdict.Skip, false, "kernel did not build")},
		want: Outcome{State: NotBuilt, Reason: "kernel did not build"},
	}, {
		name:  "infra",
		k:     report.Kernel{Key: "6d82e27631460462f1f2633d"},
		rs:    []report.Result{pass("a"), cell("b", verdict.Infra, false, "VM did not start")},
		equiv: equiv,
		want:  Outcome{State: Infra, Reason: "b: INFRA (VM did not start)", Scenarios: []string{"a"}},
	}, {
		name: "infra: a scenario not reached",
		k:    report.Kernel{Key: "6d82e27631460462f1f2633d"},
		rs:   []report.Result{pass("a"), cell("b", verdict.Skip, false, "not reached")},
		want: Outcome{State: Infra, Reason: "b: SKIP (not reached)", Scenarios: []string{"a"}},
	}, {
		name: "infra: interrupted before its kernel was built",
		rs:   []report.Result{cell("a", verdict.Infra, false, "interrupted: not prepared: context canceled")},
		want: Outcome{State: Infra, Reason: "a: INFRA (interrupted: not prepared: context canceled)", Unbuilt: true},
	}, {
		name: "infra: no cells",
		want: Outcome{State: Infra, Reason: "no results", Unbuilt: true},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := Classify(m, c.k, c.rs, c.equiv)
			c.want.Mutant = m
			if !reflect.DeepEqual(o, c.want) {
				t.Errorf("Classify =\n%+v\nwant\n%+v", o, c.want)
			}
		})
	}
}

func outcomes(t *testing.T) []Outcome {
	_, ms := loadMutants(t, "v2")
	pick := func(id string) Mutant {
		for _, m := range ms {
			if m.ID == id {
				return m
			}
		}
		t.Fatalf("no mutant %s", id)
		return Mutant{}
	}
	return []Outcome{
		{Mutant: pick("fs/fuse/backing.c:198:drop-capable"), State: Killed, Killers: []string{"close-all-unprivileged"}, Reason: "close-all-unprivileged: FAIL (ioctl succeeded)"},
		{Mutant: pick("fs/fuse/backing.c:182:callback-stop"), State: Survived, Scenarios: []string{"restart-reopen", "close-all"}},
		{Mutant: pick("fs/fuse/backing.c:195:delete-statement"), State: Equivalent, Reason: "debug output only"},
		{Mutant: pick("fs/fuse/backing.c:199:return-value"), State: NotBuilt, Reason: "build failed\nmore"},
		{Mutant: pick("fs/fuse/backing.c:199:return-value#2"), State: Killed, Killers: []string{"close-all"}, Listed: true},
		{Mutant: pick("fs/fuse/iomode.c:99:swap-eq"), State: Infra, Reason: "a: INFRA (qemu)"},
	}
}

func TestSummarize(t *testing.T) {
	s := Summarize(outcomes(t))
	if s.Generated != 6 || s.Built != 5 || s.Killed != 2 || s.Survived != 1 || s.Equivalent != 1 || s.NotBuilt != 1 || s.Infra != 1 {
		t.Errorf("summary %+v", s)
	}
	if r := s.KillRate(); math.Abs(r-2.0/3) > 1e-9 { // 2 / (5 - 1 - 1)
		t.Errorf("kill rate %v, want 2/3", r)
	}
	rv := s.PerOperator["return-value"]
	if rv == nil || rv.Generated != 2 || rv.Built != 1 || rv.Killed != 1 || rv.NotBuilt != 1 || rv.KillRate() != 1 {
		t.Errorf("return-value counts %+v", rv)
	}
	if (Summary{}).KillRate() != 0 || Summarize(nil).KillRate() != 0 {
		t.Error("the kill rate of nothing is not 0")
	}
	unbuilt := Summarize([]Outcome{{State: Killed}, {State: Infra, Unbuilt: true}, {State: Infra}})
	if unbuilt.Built != 2 || unbuilt.Infra != 2 || unbuilt.KillRate() != 1 {
		t.Errorf("an infra mutant never built counted as built: %+v", unbuilt)
	}
	eqOnly := Summarize([]Outcome{{State: Equivalent}})
	if eqOnly.KillRate() != 0 {
		t.Error("the kill rate with only equivalents is not 0")
	}
}

func TestWriteMarkdown(t *testing.T) {
	outs := outcomes(t)
	var b bytes.Buffer
	if err := WriteMarkdown(&b, "Mutation analysis: v2", Summarize(outs), outs); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	surv := outs[1].Mutant
	for _, want := range []string{
		"# Mutation analysis: v2\n",
		"Kill rate **66.7%**",
		"| 6 | 5 | 2 | 1 | 1 | 1 | 1 |",
		"| return-value | 2 | 1 | 0 | 0 | 1 | 0 | 100.0% |",
		"## Survivors\n\n### `fs/fuse/backing.c:182:callback-stop`",
		"Scenarios that ran: restart-reopen, close-all.",
		"```diff\n" + diffPart(surv) + "\n```",
		"-\treturn 0;\n+\treturn 1;\n",
		"## Not built\n\n- `fs/fuse/backing.c:199:return-value`: build failed\n",
		"## Equivalent\n\n- `fs/fuse/backing.c:195:delete-statement`: debug output only\n",
		"- `fs/fuse/iomode.c:99:swap-eq`: a: INFRA (qemu)",
		"- `fs/fuse/backing.c:198:drop-capable` by close-all-unprivileged: close-all-unprivileged: FAIL (ioctl succeeded)",
		"## Listed as equivalent, but killed\n\nTheir entries in the equivalence file explain nothing in this run: remove them, unless another configuration (or another run of a race) still needs them.\n\n- `fs/fuse/backing.c:199:return-value#2` by close-all\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("summary.md lacks %q:\n%s", want, md)
		}
	}
	if strings.Index(md, "## Per operator") > strings.Index(md, "## Survivors") ||
		strings.Index(md, "| drop-capable") > strings.Index(md, "| callback-stop") {
		t.Error("sections or operators out of order")
	}
}

func TestWriteText(t *testing.T) {
	outs := outcomes(t)
	var b bytes.Buffer
	WriteText(&b, Summarize(outs), outs)
	want := "mutants: 6 generated, 5 built, 2 killed, 1 survived, 1 equivalent, 1 not built, 1 infra; kill rate 66.7%\n" +
		"killed per operator: drop-capable 1/1, callback-stop 0/1, return-value 1/1, swap-eq 0/0, delete-statement 0/0\n" +
		"SURVIVED fs/fuse/backing.c:182:callback-stop: - return 0; / + return 1;\n" +
		"KILLED BUT LISTED fs/fuse/backing.c:199:return-value#2: killed by close-all; its equivalence entry explains nothing in this run\n"
	if b.String() != want {
		t.Errorf("text:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestWriteMutants(t *testing.T) {
	_, ms := loadMutants(t, "v2")
	dir := filepath.Join(t.TempDir(), "mutants")
	if err := WriteMutants(dir, ms); err != nil {
		t.Fatal(err)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*.patch"))
	if len(names) != len(ms) {
		t.Fatalf("%d patches written for %d mutants", len(names), len(ms))
	}
	data, err := os.ReadFile(filepath.Join(dir, "mutant-fs-fuse-backing.c-199-return-value-2.patch"))
	if err != nil || !strings.Contains(string(data), "Subject: [MUTANT] fs/fuse/backing.c:199:return-value#2\n") {
		t.Errorf("mutant patch: %v\n%s", err, data)
	}
}

func TestDescribe(t *testing.T) {
	m := Mutant{ID: "f.c:3:drop-lock", Original: "\tspin_lock(&l);\n\tspin_unlock(&l);"}
	if got, want := m.Describe(), "f.c:3:drop-lock: - spin_lock(&l); spin_unlock(&l); / + (deleted)"; got != want {
		t.Errorf("Describe = %q, want %q", got, want)
	}
}
