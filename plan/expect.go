package plan

import (
	"fmt"

	"fusevm/report"
	"fusevm/scenarios"
	"fusevm/verdict"
)

// Expectation is the verdict a scenario should give on a variant.
type Expectation struct {
	Verdict verdict.Verdict
	// KnownIssue is the reason of the known issue that set Verdict; ""
	// when the claims did.
	KnownIssue string
}

// expectations decides what each scenario should give on a kernel that
// claims claims: PASS when it claims every need of the scenario, FAIL
// otherwise (scenarios.Expected), unless a known issue of this exact
// config set and patch selection says otherwise.
func expectations(ss []scenarios.Scenario, claims []string, known map[string]knownIssue) map[string]Expectation {
	have := map[string]bool{}
	for _, c := range claims {
		have[c] = true
	}
	out := map[string]Expectation{}
	for _, s := range ss {
		e := Expectation{Verdict: scenarios.Expected(s.Script, have)}
		if k, ok := known[s.Name]; ok {
			e = Expectation{Verdict: k.verdict, KnownIssue: k.reason}
		}
		out[s.Name] = e
	}
	return out
}

// Expect returns the expectation of the named scenario. A result that is
// no scenario of the variant (a "(boot)" row: a kernel report outside
// every scenario; a FeaturesScenario row: the kernel's features disagree
// with the claims) must PASS, so its existence is unexpected.
func (v *Variant) Expect(scenario string) Expectation {
	if e, ok := v.expect[scenario]; ok {
		return e
	}
	return Expectation{Verdict: verdict.Pass}
}

// Settle names r's kernel, variant and config and fills its expectation:
// the expected verdict, the known issue, whether the verdict met it, and
// a reason when it did not and r has none. It is the only place results
// get their expectation, whether they come from one run or are merged
// repeats (report.Merge).
func (v *Variant) Settle(r *report.Result) {
	r.Kernel, r.Variant, r.Config = v.Kernel.Name, v.Name, v.Config
	e := v.Expect(r.Scenario)
	r.Expected, r.KnownIssue = e.Verdict, e.KnownIssue
	r.AsExpected = r.Verdict == r.Expected
	switch {
	case r.AsExpected || r.Reason != "":
	case e.KnownIssue != "":
		r.Reason = fmt.Sprintf("the known issue (%s) no longer reproduces: %s", e.Verdict, e.KnownIssue)
	case r.Verdict == verdict.Pass:
		r.Reason = fmt.Sprintf("passed where %s was expected: a reproducer that passes on a kernel without the fix proves nothing", r.Expected)
	}
}
