package mutate

import (
	"fmt"
	"sort"
	"strings"

	"fusevm/report"
	"fusevm/verdict"
)

// State is what became of a mutant.
type State string

// The states of a mutant.
const (
	// Killed: a cell's verdict was not as expected.
	Killed State = "killed"
	// Survived: every cell was as expected.
	Survived State = "survived"
	// Equivalent: it survived and is listed in the equivalence file.
	Equivalent State = "equivalent"
	// NotBuilt: the mutant did not apply or build; nothing ran.
	NotBuilt State = "not-built"
	// Infra: some cells did not run (INFRA, or SKIP where a verdict was
	// expected) and none that ran was unexpected: nothing is known.
	Infra State = "infra"
)

// Outcome is a mutant with what became of it.
type Outcome struct {
	Mutant Mutant `json:"mutant"`
	State  State  `json:"state"`
	// Killers are the scenarios (or "(boot)"/"(features)" rows) whose
	// cell was not as expected.
	Killers []string `json:"killers,omitempty"`
	// Reason is the first unexpected cell, "<scenario>: <verdict>
	// (<reason>)", or the build error, or the equivalence reason.
	Reason string `json:"reason,omitempty"`
	// Scenarios are the scenarios that ran (their cell is neither SKIP nor
	// INFRA).
	Scenarios []string `json:"scenarios,omitempty"`
	// Unbuilt is set on an Infra mutant whose kernel was never built (the
	// run was interrupted, or its source failed, before the build): it
	// does not count as built.
	Unbuilt bool `json:"unbuilt,omitempty"`
	// Listed is set on a killed mutant that the equivalence file lists
	// anyway: its entry explains nothing in this run (a scenario added
	// since kills it, or this configuration does).
	Listed bool `json:"listed_equivalent,omitempty"`
}

// Classify decides a mutant's state from its kernel record and its cells:
// a cell that ran and is not as expected kills it (an unexpected SKIP or
// INFRA cell did not run, so it does not); a kernel that did not apply or
// build (k.BuildError), or cells that are all SKIP, make it NotBuilt; cells
// that did not run with none unexpected make it Infra; otherwise it
// Survived, or is Equivalent when equiv lists it.
func Classify(m Mutant, k report.Kernel, rs []report.Result, equiv map[string]string) Outcome {
	o := Outcome{Mutant: m}
	for _, r := range rs {
		if r.Verdict != verdict.Skip && r.Verdict != verdict.Infra {
			o.Scenarios = append(o.Scenarios, r.Scenario)
		}
	}
	if k.BuildError != "" {
		o.State, o.Reason = NotBuilt, k.BuildError
		return o
	}
	if len(rs) == 0 {
		o.State, o.Reason, o.Unbuilt = Infra, "no results", k.Key == ""
		return o
	}
	var notRun *report.Result
	allSkip := true
	for i, r := range rs {
		allSkip = allSkip && r.Verdict == verdict.Skip
		switch {
		case r.AsExpected:
		case r.Verdict == verdict.Skip || r.Verdict == verdict.Infra:
			if notRun == nil {
				notRun = &rs[i]
			}
		default:
			o.Killers = append(o.Killers, r.Scenario)
			if o.Reason == "" {
				o.Reason = cellReason(r)
			}
		}
	}
	switch {
	case len(o.Killers) > 0:
		o.State, o.Listed = Killed, equiv[m.ID] != ""
	case allSkip:
		o.State, o.Reason = NotBuilt, rs[0].Reason
		if o.Reason == "" {
			o.Reason = "every cell was skipped"
		}
	case notRun != nil:
		o.State, o.Reason, o.Unbuilt = Infra, cellReason(*notRun), k.Key == ""
	case equiv[m.ID] != "":
		o.State, o.Reason = Equivalent, equiv[m.ID]
	default:
		o.State = Survived
	}
	return o
}

func cellReason(r report.Result) string {
	s := fmt.Sprintf("%s: %s", r.Scenario, r.Verdict)
	if r.Reason != "" {
		s += " (" + r.Reason + ")"
	}
	return s
}

// Counts are mutants by state.
type Counts struct {
	Generated, Built, Killed, Equivalent, Survived, NotBuilt, Infra int
}

// KillRate is killed / (killed + survived), as a fraction (the mutants
// with a verdict: built, and neither infra nor equivalent); 0 when none
// count.
func (c Counts) KillRate() float64 {
	n := c.Killed + c.Survived
	if n <= 0 {
		return 0
	}
	return float64(c.Killed) / float64(n)
}

func (c *Counts) add(o Outcome) {
	c.Generated++
	switch o.State {
	case Killed:
		c.Killed++
	case Equivalent:
		c.Equivalent++
	case Survived:
		c.Survived++
	case NotBuilt:
		c.NotBuilt++
	case Infra:
		c.Infra++
	}
	if o.State != NotBuilt && !o.Unbuilt {
		c.Built++
	}
}

// Summary counts the outcomes of a mutation run, in all and per operator.
type Summary struct {
	Generated, Built, Killed, Equivalent, Survived, NotBuilt, Infra int
	// PerOperator holds the same counts for each operator that made a
	// mutant.
	PerOperator map[string]*Counts
}

// Summarize counts outcomes.
func Summarize(outs []Outcome) Summary {
	var all Counts
	per := map[string]*Counts{}
	for _, o := range outs {
		all.add(o)
		c := per[o.Mutant.Operator]
		if c == nil {
			c = &Counts{}
			per[o.Mutant.Operator] = c
		}
		c.add(o)
	}
	return Summary{Generated: all.Generated, Built: all.Built, Killed: all.Killed, Equivalent: all.Equivalent,
		Survived: all.Survived, NotBuilt: all.NotBuilt, Infra: all.Infra, PerOperator: per}
}

// Counts returns the totals of s.
func (s Summary) Counts() Counts {
	return Counts{Generated: s.Generated, Built: s.Built, Killed: s.Killed, Equivalent: s.Equivalent,
		Survived: s.Survived, NotBuilt: s.NotBuilt, Infra: s.Infra}
}

// KillRate is killed / (killed + survived), as a fraction; 0 when
// none count.
func (s Summary) KillRate() float64 { return s.Counts().KillRate() }

// operatorNames returns the operators of s in Operators order, then any
// other name.
func (s Summary) operatorNames() []string {
	var out []string
	for _, op := range Operators {
		if s.PerOperator[op] != nil {
			out = append(out, op)
		}
	}
	var other []string
	for op := range s.PerOperator {
		if operatorFuncs[op] == nil {
			other = append(other, op)
		}
	}
	sort.Strings(other)
	return append(out, other...)
}

// oneLine shows one or more code lines on one line.
func oneLine(code string) string {
	var parts []string
	for _, l := range strings.Split(code, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	if len(parts) == 0 {
		return "(deleted)"
	}
	return strings.Join(parts, " ")
}
