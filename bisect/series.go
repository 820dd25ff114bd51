package bisect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"fusevm/report"
	"fusevm/verdict"
)

// Judge classifies one run of a target's results: a skip when any result
// is SKIP (the target did not apply, configure or build) or INFRA (it
// could not be tested), failed when any is not as expected.
func Judge(rs []report.Result) Run {
	var bad []string
	for _, r := range rs {
		switch {
		case r.Verdict == verdict.Skip:
			return Run{Skip: true, Detail: r.Reason}
		case r.Verdict == verdict.Infra:
			return Run{Skip: true, Detail: "INFRA: " + r.Reason}
		case !r.AsExpected:
			bad = append(bad, fmt.Sprintf("%s %s (want %s)", r.Scenario, r.Verdict, r.Expected))
		}
	}
	return Run{Failed: len(bad) > 0, Detail: strings.Join(bad, "; ")}
}

// Tester runs the targets of a series bisection.
type Tester interface {
	// Test runs the named scenarios (all when names is nil) once on
	// version of the series with its first patches applied (all of them
	// when patches < 0), and returns the results with their expectations.
	Test(ctx context.Context, version, patches int, names []string) ([]report.Result, error)
	// Excerpt is the kernel report, or the last console lines, of an
	// unexpected result.
	Excerpt(r report.Result) string
}

// Version is one version of a series under bisection.
type Version struct {
	Name string
	// Patches are the names of its patches, in the order they apply.
	Patches []string
}

// SeriesTry is one target tried by a series bisection (in bisect.json).
type SeriesTry struct {
	Version string `json:"version"`
	// Patches is the number of patches applied, -1 for all.
	Patches  int               `json:"patches"`
	Class    string            `json:"class"`
	Detail   string            `json:"detail,omitempty"`
	Verdicts map[string]string `json:"verdicts,omitempty"`
}

// String names the target: "v2", or "v2, first 1 patch(es)".
func (t SeriesTry) String() string {
	if t.Patches < 0 {
		return t.Version
	}
	return fmt.Sprintf("%s, first %d patch(es)", t.Version, t.Patches)
}

// SeriesReport is the outcome of a series bisection (bisect.json).
type SeriesReport struct {
	Kernel     string      `json:"kernel"`
	Versions   []string    `json:"versions"`
	Tries      []SeriesTry `json:"tries"`
	BadVersion string      `json:"bad_version,omitempty"`
	// Scenarios are those whose results turned unexpected in BadVersion.
	Scenarios []string `json:"scenarios,omitempty"`
	// Culprit is the first patch that turns results unexpected (or the
	// candidates, when skips hide the boundary).
	Culprit  []string          `json:"culprit,omitempty"`
	Before   map[string]string `json:"verdicts_before,omitempty"`
	After    map[string]string `json:"verdicts_after,omitempty"`
	Excerpt  string            `json:"console_excerpt,omitempty"`
	Finished time.Time         `json:"finished"`
}

// SeriesSearch finds where a series regressed: the first version with an
// unexpected result (versions in order), then, by bisection over "the
// first k patches", the first patch of it that turns the results of the
// scenarios that went wrong unexpected.
type SeriesSearch struct {
	Policy Policy
	// Kernel names the base kernel in the report.
	Kernel   string
	Versions []Version
	Tester   Tester
	// Tried, if set, is told of every try as it ends.
	Tried func(SeriesTry)
}

// target is a version with a number of its patches (-1: all).
type target struct{ version, patches int }

// probe is what the tries of one target saw.
type probe struct {
	last       []report.Result // the results of its last run
	unexpected []string        // the scenarios unexpected in any run, in order
}

// Run runs the search. On an error it returns the report of what was
// tried so far with the error.
func (s *SeriesSearch) Run(ctx context.Context) (*SeriesReport, error) {
	rep := &SeriesReport{Kernel: s.Kernel}
	for _, v := range s.Versions {
		rep.Versions = append(rep.Versions, v.Name)
	}
	probes := map[target]*probe{}
	test := func(ctx context.Context, t target, names []string) (Class, string, error) {
		p := &probe{}
		probes[t] = p
		class, runs, err := Step(ctx, s.Policy, func(ctx context.Context) (Run, error) {
			rs, err := s.Tester.Test(ctx, t.version, t.patches, names)
			if err != nil {
				return Run{}, err
			}
			p.last = rs
			for _, r := range rs {
				if !r.AsExpected && !slices.Contains(p.unexpected, r.Scenario) {
					p.unexpected = append(p.unexpected, r.Scenario)
				}
			}
			return Judge(rs), nil
		})
		try := SeriesTry{Version: s.Versions[t.version].Name, Patches: t.patches, Class: class.String(), Verdicts: verdicts(p.last)}
		if len(runs) > 0 {
			try.Detail = runs[len(runs)-1].Detail
		}
		rep.Tries = append(rep.Tries, try)
		if s.Tried != nil {
			s.Tried(try)
		}
		return class, try.Detail, err
	}
	bad, _, err := FirstBadLinear(ctx, len(s.Versions), func(ctx context.Context, i int) (Class, string, error) {
		return test(ctx, target{i, -1}, nil)
	})
	if err != nil || bad < 0 {
		return rep, err
	}
	rep.BadVersion = s.Versions[bad].Name
	rep.Scenarios = probes[target{bad, -1}].unexpected
	patches := s.Versions[bad].Patches
	if len(patches) == 0 {
		return rep, nil
	}
	lo, hi, _, err := FirstBad(ctx, len(patches), func(ctx context.Context, k int) (Class, string, error) {
		return test(ctx, target{bad, k}, rep.Scenarios)
	})
	if err != nil {
		return rep, err
	}
	rep.Culprit = patches[lo-1 : hi]
	if lo == hi {
		after := probes[target{bad, lo}]
		if lo == len(patches) {
			after = probes[target{bad, -1}]
		}
		rep.After = verdicts(after.last)
		if lo > 1 {
			rep.Before = verdicts(probes[target{bad, lo - 1}].last)
		} else {
			rep.Before = map[string]string{"": "the base without the series (assumed good)"}
		}
		for _, r := range after.last {
			if !r.AsExpected {
				rep.Excerpt = s.Tester.Excerpt(r)
				break
			}
		}
	}
	return rep, nil
}

// verdicts maps each result's scenario to its cell.
func verdicts(rs []report.Result) map[string]string {
	if len(rs) == 0 {
		return nil
	}
	m := map[string]string{}
	for _, r := range rs {
		m[r.Scenario] = r.Cell()
	}
	return m
}

// WriteText writes the report for people (bisect.txt).
func (rep *SeriesReport) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "bisect series on %s: %s\n\nsteps:\n", rep.Kernel, strings.Join(rep.Versions, " "))
	for _, t := range rep.Tries {
		fmt.Fprintf(&b, "  %-28s %-5s %s\n", t, t.Class, t.Detail)
	}
	switch {
	case rep.BadVersion == "":
		fmt.Fprintln(&b, "\nno version turns an expected result unexpected")
	case len(rep.Culprit) == 0:
		fmt.Fprintf(&b, "\nfirst bad version: %s (could not be narrowed to a patch)\n", rep.BadVersion)
	case len(rep.Culprit) > 1:
		fmt.Fprintf(&b, "\nfirst bad version: %s; skipped steps hide the boundary: the culprit is one of %s\n", rep.BadVersion, strings.Join(rep.Culprit, ", "))
	default:
		fmt.Fprintf(&b, "\nfirst bad version: %s\nfirst bad patch:   %s\nscenarios:         %s\n", rep.BadVersion, rep.Culprit[0], strings.Join(rep.Scenarios, ", "))
		for _, s := range rep.Scenarios {
			before := rep.Before[s]
			if before == "" {
				before = rep.Before[""]
			}
			fmt.Fprintf(&b, "  %s: before %s, after %s\n", s, before, rep.After[s])
		}
		fmt.Fprintf(&b, "console excerpt:\n  %s\n", strings.ReplaceAll(strings.TrimRight(rep.Excerpt, "\n"), "\n", "\n  "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteFiles sets rep.Finished to now and writes the report into dir:
// bisect.json, and the text of WriteText in bisect.txt, whose path it
// returns.
func (rep *SeriesReport) WriteFiles(dir string) (string, error) {
	rep.Finished = time.Now()
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return "", fmt.Errorf("bisect.json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bisect.json"), append(data, '\n'), 0o644); err != nil {
		return "", err
	}
	txt := filepath.Join(dir, "bisect.txt")
	fh, err := os.Create(txt)
	if err != nil {
		return "", err
	}
	if err := errors.Join(rep.WriteText(fh), fh.Close()); err != nil {
		return "", fmt.Errorf("%s: %w", txt, err)
	}
	return txt, nil
}
