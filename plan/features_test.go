package plan

import (
	"testing"

	"fusevm/events"
	"fusevm/report"
	"fusevm/verdict"
)

// Probe answers as the agent words them (agent.probeFeatures).
var (
	closeAllYes = events.Feature{Name: events.FeatureCloseAll, State: events.Supported, Detail: "FUSE_DEV_IOC_BACKING_CLOSE_ALL is there (it does not answer ENOTTY)"}
	closeAllNo  = events.Feature{Name: events.FeatureCloseAll, State: events.NotSupported, Detail: "FUSE_DEV_IOC_BACKING_CLOSE_ALL answers ENOTTY"}
	closeAllEh  = events.Feature{Name: events.FeatureCloseAll, State: events.Unknown, Detail: "probing FUSE_DEV_IOC_BACKING_CLOSE_ALL: operation not permitted"}
	minusOneYes = events.Feature{Name: events.FeatureCloseMinusOne, State: events.Supported, Detail: "FUSE_DEV_IOC_BACKING_CLOSE(-1) closes all"}
	minusOneNo  = events.Feature{Name: events.FeatureCloseMinusOne, State: events.NotSupported, Detail: "FUSE_DEV_IOC_BACKING_CLOSE(-1) answers EINVAL"}
	minusOneEh  = events.Feature{Name: events.FeatureCloseMinusOne, State: events.Unknown, Detail: "unexpected error probing FUSE_DEV_IOC_BACKING_CLOSE(-1): no space left on device"}
	inodeYes    = events.Feature{Name: events.FeatureInodeCache, State: events.Supported, Detail: "FOPEN_PASSTHROUGH_INODE_CACHE (bit 9) reuses the inode's backing file"}
	inodeNo     = events.Feature{Name: events.FeatureInodeCache, State: events.NotSupported, Detail: "a passthrough reopen with FOPEN_PASSTHROUGH_INODE_CACHE (bit 9) and a closed backing id fails with EIO"}
	inodeEh     = events.Feature{Name: events.FeatureInodeCache, State: events.Unknown, Detail: "plan parameter inode_cache_bit \"x\" is no bit number of the 32-bit open flags"}
)

// TestCompareFeatures covers every class of a feature against a claim:
// claimed and supported, claimed and not, not claimed and supported, not
// claimed and not, unknown claimed and not, not reported at all; with
// several mismatches at once and without any report.
func TestCompareFeatures(t *testing.T) {
	v1 := []string{"close_all_minus_one", "inode_cache_flag"}
	v2 := []string{"close_all_ioctl", "same_inode_reuse"}
	allNo := []events.Feature{closeAllNo, minusOneNo, inodeNo}
	for _, tc := range []struct {
		name    string
		claims  []string
		fs      []events.Feature
		verdict verdict.Verdict // "" for no row
		reason  string
	}{
		{"no report", v2, nil, "", ""},
		{"baseline, nothing supported", nil, allNo, "", ""},
		{"v1 agrees", v1, []events.Feature{closeAllNo, minusOneYes, inodeYes}, "", ""},
		{"v2 agrees (same_inode_reuse has no probe)", v2, []events.Feature{closeAllYes, minusOneNo, inodeNo}, "", ""},
		{"claimed, not supported", v2, allNo, verdict.Fail,
			"claims close_all_ioctl, but FUSE_DEV_IOC_BACKING_CLOSE_ALL answers ENOTTY"},
		{"supported, not claimed", v2, []events.Feature{closeAllYes, minusOneYes, inodeNo}, verdict.Fail,
			"does not claim close_all_minus_one, but FUSE_DEV_IOC_BACKING_CLOSE(-1) closes all"},
		{"a mismatch per feature, in probe order", v1, []events.Feature{inodeNo, minusOneNo, closeAllYes}, verdict.Fail,
			"does not claim close_all_ioctl, but FUSE_DEV_IOC_BACKING_CLOSE_ALL is there (it does not answer ENOTTY); " +
				"claims close_all_minus_one, but FUSE_DEV_IOC_BACKING_CLOSE(-1) answers EINVAL; " +
				"claims inode_cache_flag, but a passthrough reopen with FOPEN_PASSTHROUGH_INODE_CACHE (bit 9) and a closed backing id fails with EIO"},
		{"unknown, not claimed", v2, []events.Feature{closeAllYes, minusOneEh, inodeEh}, "", ""},
		{"unknown, claimed", v1, []events.Feature{closeAllEh, minusOneYes, inodeEh}, verdict.Infra,
			"claims inode_cache_flag, but its probe could not tell: plan parameter inode_cache_bit \"x\" is no bit number of the 32-bit open flags"},
		{"a mismatch and a claimed unknown", v1, []events.Feature{closeAllYes, minusOneEh, inodeYes}, verdict.Fail,
			"does not claim close_all_ioctl, but FUSE_DEV_IOC_BACKING_CLOSE_ALL is there (it does not answer ENOTTY); " +
				"claims close_all_minus_one, but its probe could not tell: unexpected error probing FUSE_DEV_IOC_BACKING_CLOSE(-1): no space left on device"},
		{"a claimed feature not reported", v2, []events.Feature{minusOneNo, inodeNo}, verdict.Infra,
			"claims close_all_ioctl, but its probe could not tell: the guest did not report it"},
		{"an unclaimed feature not reported", v2, []events.Feature{closeAllYes}, "", ""},
		{"an unknown state, claimed", v2, []events.Feature{{Name: events.FeatureCloseAll, State: "maybe"}, minusOneNo, inodeNo}, verdict.Infra,
			`claims close_all_ioctl, but its probe could not tell: the probe answers "maybe"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := &Variant{Name: "v", Claims: tc.claims}
			r := v.CompareFeatures(tc.fs)
			if tc.verdict == "" {
				if r != nil {
					t.Fatalf("row %+v, want none", *r)
				}
				return
			}
			if r == nil {
				t.Fatalf("no row, want %s %q", tc.verdict, tc.reason)
			}
			if r.Scenario != FeaturesScenario || r.Verdict != tc.verdict || r.Reason != tc.reason {
				t.Errorf("row %s %s %q\nwant %s %s %q", r.Scenario, r.Verdict, r.Reason, FeaturesScenario, tc.verdict, tc.reason)
			}
			// Settled, the row is expected to PASS: it is unexpected.
			v.Settle(r)
			if r.Expected != verdict.Pass || r.AsExpected || r.Reason != tc.reason {
				t.Errorf("settled: %+v", *r)
			}
		})
	}
}

// TestFeaturesRowUnexpected: a settled "(features)" row makes the run
// unexpected, so the command exits 1.
func TestFeaturesRowUnexpected(t *testing.T) {
	v := &Variant{Name: "v2", Claims: []string{"close_all_ioctl"}}
	r := v.CompareFeatures([]events.Feature{closeAllNo, minusOneNo, inodeNo})
	v.Settle(r)
	ok := report.Result{Scenario: "smoke-passthrough", Verdict: verdict.Pass}
	v.Settle(&ok)
	run := &report.Run{Results: []report.Result{ok, *r}}
	if run.AllAsExpected() {
		t.Errorf("a features mismatch left the run as expected: %+v", run.Results)
	}
}
