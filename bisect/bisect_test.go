package bisect

import (
	"context"
	"errors"
	"testing"
)

func TestClassify(t *testing.T) {
	cases := []struct {
		f, n int
		want Class
	}{
		{0, 1, Good}, {1, 1, Bad},
		{0, 3, Good}, {1, 3, Skip}, {2, 3, Bad}, {3, 3, Bad},
		{1, 12, Skip}, {2, 12, Bad},
		{2, 18, Skip}, {3, 18, Bad},
		{0, 0, Skip},
	}
	for _, c := range cases {
		if got := Classify(c.f, c.n); got != c.want {
			t.Errorf("Classify(%d of %d) = %s, want %s", c.f, c.n, got, c.want)
		}
	}
}

func TestExitCodes(t *testing.T) {
	for _, c := range []struct {
		class   Class
		findFix bool
		want    int
	}{
		{Good, false, 0}, {Bad, false, 1}, {Skip, false, 125},
		{Good, true, 1}, {Bad, true, 0}, {Skip, true, 125},
	} {
		if got := ExitCode(c.class, c.findFix); got != c.want || got > 127 {
			t.Errorf("ExitCode(%s, %v) = %d, want %d", c.class, c.findFix, got, c.want)
		}
	}
}

// fakeRuns replays a fixed sequence of run outcomes.
func fakeRuns(outcomes ...string) func(context.Context) (Run, error) {
	i := 0
	return func(context.Context) (Run, error) {
		o := outcomes[i%len(outcomes)]
		i++
		switch o {
		case "pass":
			return Run{}, nil
		case "fail":
			return Run{Failed: true, Detail: "leak-after-restart FAIL"}, nil
		case "skip":
			return Run{Skip: true, Detail: "does not build"}, nil
		}
		return Run{}, errors.New("boom")
	}
}

func TestStepPolicy(t *testing.T) {
	ctx := context.Background()
	p := Policy{Runs: 1, Confirm: 2}
	cases := []struct {
		name     string
		outcomes []string
		want     Class
		runs     int
	}{
		{"clean pass runs once", []string{"pass"}, Good, 1},
		{"steady failure is confirmed", []string{"fail"}, Bad, 3},
		{"one-off failure is flaky", []string{"fail", "pass", "pass"}, Skip, 3},
		{"two of three failures is bad", []string{"fail", "pass", "fail"}, Bad, 3},
		{"a build failure skips at once", []string{"skip"}, Skip, 1},
	}
	for _, c := range cases {
		class, runs, err := Step(ctx, p, fakeRuns(c.outcomes...))
		if err != nil || class != c.want || len(runs) != c.runs {
			t.Errorf("%s: %s after %d runs (%v), want %s after %d", c.name, class, len(runs), err, c.want, c.runs)
		}
	}
	if _, _, err := Step(ctx, p, fakeRuns("error")); err == nil {
		t.Error("an environment error must surface")
	}
}

// table is a fake environment: the class of each index.
func table(classes ...Class) (Probe, *[]int) {
	var probed []int
	return func(_ context.Context, i int) (Class, string, error) {
		probed = append(probed, i)
		return classes[i], "", nil
	}, &probed
}

func TestFirstBad(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name   string
		table  []Class
		lo, hi int
	}{
		{"culprit in the middle", []Class{Good, Good, Good, Bad, Bad, Bad, Bad, Bad}, 3, 3},
		{"culprit is the last patch", []Class{Good, Good, Good, Good, Bad}, 4, 4},
		{"culprit is the first patch", []Class{Good, Bad, Bad, Bad}, 1, 1},
		{"skip stepped around", []Class{Good, Skip, Good, Bad, Bad, Bad}, 3, 3},
		{"skip next to the culprit hides it", []Class{Good, Good, Skip, Bad, Bad, Bad}, 2, 3},
		{"skip hides the boundary", []Class{Good, Good, Skip, Bad}, 2, 3},
	}
	for _, c := range cases {
		probe, probed := table(c.table...)
		lo, hi, tries, err := FirstBad(ctx, len(c.table)-1, probe)
		if err != nil || lo != c.lo || hi != c.hi {
			t.Errorf("%s: got [%d,%d] (%v), want [%d,%d]", c.name, lo, hi, err, c.lo, c.hi)
		}
		if len(tries) != len(*probed) {
			t.Errorf("%s: %d tries recorded for %d probes", c.name, len(tries), len(*probed))
		}
		for _, i := range *probed {
			if i == 0 || i == len(c.table)-1 {
				t.Errorf("%s: probed a known end %d", c.name, i)
			}
		}
	}
	// Bisection, not a linear scan: 64 patches take about log2(64) probes.
	classes := make([]Class, 65)
	for i := range classes {
		classes[i] = Good
		if i >= 37 {
			classes[i] = Bad
		}
	}
	probe, probed := table(classes...)
	if lo, _, _, _ := FirstBad(ctx, 64, probe); lo != 37 || len(*probed) > 7 {
		t.Errorf("64 patches: culprit %d after %d probes", lo, len(*probed))
	}
}

func TestFirstBadLinear(t *testing.T) {
	probe, probed := table(Good, Skip, Good, Bad, Bad)
	i, tries, err := FirstBadLinear(context.Background(), 5, probe)
	if err != nil || i != 3 || len(*probed) != 4 || tries[1].Class != "skip" {
		t.Errorf("got %d after %v (%v)", i, tries, err)
	}
	probe, _ = table(Good, Good)
	if i, _, _ := FirstBadLinear(context.Background(), 2, probe); i != -1 {
		t.Errorf("no regression: got %d", i)
	}
}
