package plan

import (
	"fmt"
	"strings"

	"fusevm/events"
	"fusevm/report"
	"fusevm/verdict"
)

// FeaturesScenario names the result row of a variant whose kernel, as the
// guest agent probed it (events.Features), disagrees with the claims of
// its series. Like a "(boot)" row it is no scenario of the variant, so it
// is expected to PASS and its existence is unexpected.
const FeaturesScenario = "(features)"

// CompareFeatures compares the features the guest probed on v's kernel
// with v's claims, for each feature the agent probes (events.ProbedFeatures;
// same_inode_reuse has none). It is the one place they are compared.
//
// It returns nil when they agree, or when no features were reported
// (the VM did not get that far: its scenarios' cells say why). Otherwise
// it returns a FeaturesScenario row for Settle: FAIL when a claimed
// feature is not supported or a supported one is not claimed, its reason
// naming each mismatch ("claims close_all_ioctl, but
// FUSE_DEV_IOC_BACKING_CLOSE_ALL answers ENOTTY"; "does not claim
// close_all_minus_one, but FUSE_DEV_IOC_BACKING_CLOSE(-1) closes all");
// INFRA when the only trouble is a claimed feature the probe could not
// tell. An unknown answer for a feature that is not claimed is not
// reported; one for a claimed feature is also named in a FAIL row's
// reason.
func (v *Variant) CompareFeatures(fs []events.Feature) *report.Result {
	if fs == nil {
		return nil
	}
	claimed := map[string]bool{}
	for _, c := range v.Claims {
		claimed[c] = true
	}
	got := map[string]events.Feature{}
	for _, f := range fs {
		got[f.Name] = f
	}
	var mismatches, unknown []string
	for _, name := range events.ProbedFeatures {
		f, ok := got[name]
		if !ok {
			f = events.Feature{Name: name, State: events.Unknown, Detail: "the guest did not report it"}
		}
		switch {
		case f.State == events.Supported && !claimed[name]:
			mismatches = append(mismatches, fmt.Sprintf("does not claim %s, but %s", name, observed(f)))
		case f.State == events.NotSupported && claimed[name]:
			mismatches = append(mismatches, fmt.Sprintf("claims %s, but %s", name, observed(f)))
		case f.State == events.Supported || f.State == events.NotSupported:
			// They agree.
		case claimed[name]:
			unknown = append(unknown, fmt.Sprintf("claims %s, but its probe could not tell: %s", name, observed(f)))
		}
	}
	switch {
	case len(mismatches) > 0:
		return &report.Result{Scenario: FeaturesScenario, Verdict: verdict.Fail, Reason: strings.Join(append(mismatches, unknown...), "; ")}
	case len(unknown) > 0:
		return &report.Result{Scenario: FeaturesScenario, Verdict: verdict.Infra, Reason: strings.Join(unknown, "; ")}
	}
	return nil
}

// observed is what the probe of f saw, for a reason.
func observed(f events.Feature) string {
	if f.Detail != "" {
		return f.Detail
	}
	return fmt.Sprintf("the probe answers %q", f.State)
}
