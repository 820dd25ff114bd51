// Package bisect holds the decision logic of fusevm's two bisection modes,
// free of builds and VMs so it can be tested against a fake environment:
// the flake policy that classifies one step's repeated runs as good, bad
// or skip (and the exit code git bisect run expects), the commit a
// bisect-step tests and its log, and the search for the first series
// version, then the first patch inside it, whose results turn unexpected
// (SeriesSearch, which runs its targets through a Tester).
package bisect

import (
	"context"
	"fmt"
)

// Class is what a step says about a revision.
type Class int

// Classes; the zero value is not a valid class.
const (
	Good Class = iota + 1
	Bad
	Skip
)

func (c Class) String() string {
	switch c {
	case Good:
		return "good"
	case Bad:
		return "bad"
	case Skip:
		return "skip"
	}
	return fmt.Sprintf("class(%d)", int(c))
}

// Policy says how often a step runs its scenarios. A step runs Runs times;
// if any run failed, it runs Confirm more times before deciding.
//
// The decision, over all n runs with f failed: good only when f == 0; bad
// when f >= max(min(2, n), ceil(n/6)), so a single failure in one run is
// bad, but with repeats one failure alone is not enough; anything between
// is too flaky to call: skip.
type Policy struct {
	Runs    int
	Confirm int
}

// Classify applies the policy's thresholds to f failures among n runs.
func Classify(f, n int) Class {
	if n <= 0 {
		return Skip
	}
	if f == 0 {
		return Good
	}
	need := (n + 5) / 6
	if m := min(2, n); m > need {
		need = m
	}
	if f >= need {
		return Bad
	}
	return Skip
}

// Run is one run of a step's scenarios.
type Run struct {
	// Failed: some result was not as expected.
	Failed bool `json:"failed"`
	// Skip: the revision could not be tested (build or apply failure,
	// INFRA); the step is a skip whatever else happened.
	Skip bool `json:"skip"`
	// Detail says why, in one line.
	Detail string `json:"detail,omitempty"`
}

// Step runs test under the policy and classifies the revision.
func Step(ctx context.Context, p Policy, test func(context.Context) (Run, error)) (Class, []Run, error) {
	runs := max(p.Runs, 1)
	var all []Run
	failed := 0
	for i := 0; i < runs; i++ {
		r, err := test(ctx)
		if err != nil {
			return Skip, all, err
		}
		all = append(all, r)
		if r.Skip {
			return Skip, all, nil
		}
		if r.Failed {
			failed++
		}
		if i == runs-1 && failed > 0 && runs == max(p.Runs, 1) {
			runs += p.Confirm
		}
	}
	return Classify(failed, len(all)), all, nil
}

// ExitCode maps a class to git bisect run's convention: 0 good, 1 bad,
// 125 skip. findFix swaps good and bad, for finding the commit that fixed
// something (the "old" commits are the broken ones).
func ExitCode(c Class, findFix bool) int {
	switch c {
	case Good:
		if findFix {
			return 1
		}
		return 0
	case Bad:
		if findFix {
			return 0
		}
		return 1
	}
	return 125
}

// Probe tests one point of a search and says what it found.
type Probe func(ctx context.Context, i int) (Class, string, error)

// Try records one probe of a search.
type Try struct {
	Index  int    `json:"index"`
	Class  string `json:"class"`
	Detail string `json:"detail,omitempty"`
}

// FirstBadLinear probes 0..n-1 in order and returns the first bad index,
// or -1 (used across series versions, which are few and each a separate
// claim set).
func FirstBadLinear(ctx context.Context, n int, probe Probe) (int, []Try, error) {
	var tries []Try
	for i := 0; i < n; i++ {
		c, d, err := probe(ctx, i)
		tries = append(tries, Try{Index: i, Class: c.String(), Detail: d})
		if err != nil {
			return -1, tries, err
		}
		if c == Bad {
			return i, tries, nil
		}
	}
	return -1, tries, nil
}

// FirstBad finds, by bisection, the first bad index in 1..n given that 0 is
// good and n is bad (like git bisect on a patch series: index k is "the
// first k patches"). A skipped index is stepped around, as git bisect skip
// does; when skips hide the boundary, it returns the lowest and highest
// candidates (lo < hi); otherwise lo == hi is the culprit.
func FirstBad(ctx context.Context, n int, probe Probe) (lo, hi int, tries []Try, err error) {
	good, bad := 0, n
	skipped := map[int]bool{}
	for bad-good > 1 {
		mid := pick(good, bad, skipped)
		if mid < 0 {
			return good + 1, bad, tries, nil
		}
		c, d, err := probe(ctx, mid)
		tries = append(tries, Try{Index: mid, Class: c.String(), Detail: d})
		if err != nil {
			return 0, 0, tries, err
		}
		switch c {
		case Good:
			good = mid
		case Bad:
			bad = mid
		default:
			skipped[mid] = true
		}
	}
	return bad, bad, tries, nil
}

// pick chooses the untested, unskipped index closest to the middle of
// (good, bad), or -1 if none is left.
func pick(good, bad int, skipped map[int]bool) int {
	mid := (good + bad) / 2
	for d := 0; d < bad-good; d++ {
		for _, c := range []int{mid - d, mid + d} {
			if c > good && c < bad && !skipped[c] {
				return c
			}
		}
	}
	return -1
}
