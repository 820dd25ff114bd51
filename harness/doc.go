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
// A results directory records what it takes to run a cell again: each
// variant's boot (the cached images, the kernel command line, vCPUs and
// parameters) in results.json, each VM's QEMU command line in vms.json
// beside its consoles, the scripts in scenarios/, and the log of a build
// that failed (copied out of the workspace, which the next build
// overwrites). Repro runs one cell again on those images; Shell boots a
// variant into the guest's debugging shell (package guestshell) on the
// user's terminal, with QEMU's gdb stub if asked. A Logger that is also a
// StatusLogger is told where the run stands, with an end time estimated
// from the durations of earlier runs (TimingsFile in the cache).
//
// The steps that need the machine (Stages: building and booting) are an
// interface, so the scheduling, the repeats and the conversion of failures
// into cells are tested with a fake.
package harness
