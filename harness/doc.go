// Package harness runs a plan (package plan): it prepares each variant
// (kernel source, patches, configuration and build, or a prebuilt image;
// then the guest image), one after another since builds share a
// workspace per source; then boots their scenarios in VMs through package
// execute, several VMs at a time, once per repeat and in one VM per
// scenario when asked; merges the repeats of each scenario (report.Merge)
// and settles every result with the plan (plan.Variant.Settle). The
// features the guest of a variant's first VM reported are kept in its
// kernel entry and compared with its claims (plan.Variant.CompareFeatures),
// which adds a "(features)" row when they disagree.
//
// A run always has a result for every cell. A variant whose patches do not
// apply, whose config does not survive or whose build fails gets SKIP
// cells; one whose source, image or guest image cannot be had, whose VM
// cannot be started or whose run is interrupted gets INFRA cells; both
// carry the cause as their reason, and the rest of the run goes on.
//
// The steps that need the machine (Stages: building and booting) are an
// interface, so the scheduling, the repeats and the conversion of failures
// into cells are tested with a fake.
package harness
