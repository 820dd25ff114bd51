// Package report holds the results of a run and writes them:
// results.json (stable schema), junit.xml, results.ktap, summary.md, the
// text summary table and the 80-column text report for a mailing list. Whether a result is as expected is decided by package plan
// (plan.Variant.Settle); this package renders it.
package report

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"fusevm/events"
	"fusevm/internal/atomicfile"
	"fusevm/verdict"
)

// SchemaVersion is bumped on any incompatible change of results.json.
const SchemaVersion = 1

// Result is one scenario on one kernel variant.
type Result struct {
	// Kernel names the kernel: its name in configs/kernels.toml (e.g.
	// "debian-7.3"), or the source spec given on the command line.
	Kernel string `json:"kernel"`
	// Variant names the patch set: "baseline", "v2", "v2[:1]"...
	Variant string `json:"variant"`
	// Config names the config fragments, e.g. "base" or "base+debug".
	Config   string          `json:"config"`
	Scenario string          `json:"scenario"`
	Verdict  verdict.Verdict `json:"verdict"`
	// Expected is the verdict the claims (or a known issue) call for.
	Expected   verdict.Verdict `json:"expected"`
	AsExpected bool            `json:"as_expected"`
	// KnownIssue is the reason of a known-issue annotation, if one applied.
	KnownIssue string `json:"known_issue,omitempty"`
	// Reason explains a non-PASS verdict in one line.
	Reason string `json:"reason,omitempty"`
	// Splat is the first kernel splat's title, if any.
	Splat     string `json:"splat,omitempty"`
	SplatText string `json:"splat_text,omitempty"`
	// Stack is the report's stack decoded to file:line with the kernel's
	// vmlinux (or why it could not be).
	Stack string `json:"stack,omitempty"`
	// Runs holds each repeat's verdict when the scenario ran more than once.
	Runs       []verdict.Verdict `json:"runs,omitempty"`
	Accel      string            `json:"accel,omitempty"`
	Duration   time.Duration     `json:"duration_ns"`
	ConsoleLog string            `json:"console_log,omitempty"`
}

// Kernel describes one built kernel variant in a run.
type Kernel struct {
	// Name is what results call the kernel (Result.Kernel).
	Name string `json:"name"`
	// Spec is the source or image specification.
	Spec string `json:"spec"`
	// Prebuilt is set for a kernel booted as it was given (no patches,
	// config or build).
	Prebuilt bool   `json:"prebuilt,omitempty"`
	Variant  string `json:"variant"`
	Config   string `json:"config"`
	// Identity is the exact revision: package and version, git commit,
	// tarball or image digest.
	Identity string   `json:"identity"`
	Version  string   `json:"version"`
	Patches  []string `json:"patches"`
	Claims   []string `json:"claims"`
	// Features are what the guest agent found the kernel to support of
	// the series' interfaces (its first VM's events.Features event); a
	// FeaturesScenario row of package plan names where they disagree with
	// Claims. None when no VM got as far as probing.
	Features []events.Feature `json:"features,omitempty"`
	Key      string           `json:"build_key,omitempty"`
	Cached   bool             `json:"build_cached"`
	// BuildError is set when the variant did not build or apply.
	BuildError string `json:"build_error,omitempty"`
	// BuildLog is the copy, in the results directory, of the log of a
	// build that failed; BuildLogTail holds its last lines.
	BuildLog     string `json:"build_log,omitempty"`
	BuildLogTail string `json:"build_log_tail,omitempty"`
	// Series is the patch series as it was given (a directory, a series
	// file or an mbox); "" for the baseline.
	Series string `json:"series,omitempty"`
	// RunArgs are the `fusevm run` arguments that build and test this
	// variant again from its source (without --scenarios).
	RunArgs []string `json:"run_args,omitempty"`
	// Boot is how its VMs were booted; nil when it did not get as far.
	Boot *Boot `json:"boot,omitempty"`
}

// Boot is what `fusevm repro` needs to boot a variant's VM again, exactly:
// the cached images and the kernel command line. Each VM's own QEMU
// command line is in the vms.json beside its console log (VM).
type Boot struct {
	// Kernel is the bzImage booted; Vmlinux the unstripped kernel kept
	// beside it ("" for a prebuilt kernel); Initramfs the guest image.
	Kernel    string `json:"kernel"`
	Vmlinux   string `json:"vmlinux,omitempty"`
	Initramfs string `json:"initramfs"`
	// Cmdline is the whole kernel command line; Append the arguments
	// after the fixed head (vmtest.BaseCmdline), from the config's .boot
	// files.
	Cmdline string   `json:"cmdline"`
	Append  []string `json:"append,omitempty"`
	// CPUs is the number of vCPUs; 0 for the default.
	CPUs int `json:"cpus,omitempty"`
	// Params are the scenario parameters sent to the guest.
	Params map[string]string `json:"params,omitempty"`
}

// VM is one QEMU run: vms.json in a directory of console logs lists them
// in boot order.
type VM struct {
	// ConsoleLog is its console; Scenarios those it settled.
	ConsoleLog string   `json:"console_log"`
	Scenarios  []string `json:"scenarios"`
	Accel      string   `json:"accel"`
	// Exit says how it ended (vmtest.ExitReason), Error why.
	Exit  string `json:"exit"`
	Error string `json:"error,omitempty"`
	// Argv is QEMU's command line as it ran (its sockets were in a
	// temporary directory); Cmdline the kernel's.
	Argv    []string `json:"argv"`
	Cmdline string   `json:"cmdline"`
	// Kernel, Vmlinux and Initramfs are the images it booted.
	Kernel    string `json:"kernel"`
	Vmlinux   string `json:"vmlinux,omitempty"`
	Initramfs string `json:"initramfs"`
}

// Run is the content of results.json.
type Run struct {
	Schema int `json:"schema"`
	// Command is the fusevm command line that made the run.
	Command  []string  `json:"command,omitempty"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Kernels  []Kernel  `json:"kernels"`
	Results  []Result  `json:"results"`
}

// ResultsFile is the name of the results file in a results directory.
const ResultsFile = "results.json"

// ReadRun reads the results file of a results directory (or the file
// itself) and returns the directory, absolute, with the run. A file of
// another schema version is refused.
func ReadRun(arg string) (string, *Run, error) {
	path := arg
	if st, err := os.Stat(arg); err == nil && st.IsDir() {
		path = filepath.Join(arg, ResultsFile)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", nil, fmt.Errorf("results: %w", err)
	}
	var run Run
	if err := json.Unmarshal(data, &run); err != nil {
		return "", nil, fmt.Errorf("%s: %w", path, err)
	}
	if run.Schema != SchemaVersion {
		return "", nil, fmt.Errorf("%s: results schema %d, this fusevm reads %d", path, run.Schema, SchemaVersion)
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return "", nil, err
	}
	return dir, &run, nil
}

// WriteJSON writes results.json atomically.
func (run *Run) WriteJSON(path string) error {
	run.Schema = SchemaVersion
	data, err := json.MarshalIndent(run, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(data, '\n'), 0o644)
}

// RunsOf counts the runs of r (each repeat, or the one run) that gave v,
// and the runs in all.
func (r *Result) RunsOf(v verdict.Verdict) (same, total int) {
	runs := r.Runs
	if len(runs) == 0 {
		runs = []verdict.Verdict{r.Verdict}
	}
	for _, got := range runs {
		if got == v {
			same++
		}
	}
	return same, len(runs)
}

// AllAsExpected reports whether every result met its expectation.
func (run *Run) AllAsExpected() bool {
	for _, r := range run.Results {
		if !r.AsExpected {
			return false
		}
	}
	return len(run.Results) > 0
}

// Cell renders a verdict with its expectation: "FAIL (expected)", "PASS
// (UNEXPECTED, want FAIL)", "CRASH (known issue)", or "PASS (UNEXPECTED:
// known issue CRASH no longer reproduces)" (a cell that was not tested,
// SKIP or INFRA, does not say that).
func (r *Result) Cell() string {
	switch {
	case r.KnownIssue != "" && r.AsExpected:
		return fmt.Sprintf("%s (known issue)", r.Verdict)
	case r.KnownIssue != "" && r.Verdict != verdict.Skip && r.Verdict != verdict.Infra:
		return fmt.Sprintf("%s (UNEXPECTED: known issue %s no longer reproduces)", r.Verdict, r.Expected)
	case r.AsExpected:
		return fmt.Sprintf("%s (expected)", r.Verdict)
	default:
		return fmt.Sprintf("%s (UNEXPECTED, want %s)", r.Verdict, r.Expected)
	}
}

// revisions lists each kernel name once with its exact revision, in the
// order the run met them.
func (run *Run) revisions() [][2]string {
	var out [][2]string
	seen := map[string]bool{}
	for _, k := range run.Kernels {
		if k.Identity == "" || seen[k.Name+k.Identity] {
			continue
		}
		seen[k.Name+k.Identity] = true
		out = append(out, [2]string{k.Name, k.Identity})
	}
	return out
}

// column is the variant with its config when that is not the base one.
func (r *Result) column() string {
	if r.Config == "" || r.Config == "base" {
		return r.Variant
	}
	return r.Variant + " (" + r.Config + ")"
}

// Merge folds the repeats of one scenario into one result: the common
// verdict when all repeats agree, else FLAKY (with the first disagreeing
// repeat's reason). The caller settles the merged result's expectation.
func Merge(repeats []Result) Result {
	out := repeats[0]
	if len(repeats) == 1 {
		return out
	}
	for _, r := range repeats {
		out.Runs = append(out.Runs, r.Verdict)
	}
	for _, r := range repeats[1:] {
		if r.Verdict != out.Verdict {
			counts := map[verdict.Verdict]int{}
			var order []string
			for _, v := range out.Runs {
				if counts[v] == 0 {
					order = append(order, string(v))
				}
				counts[v]++
			}
			for i, v := range order {
				order[i] = fmt.Sprintf("%s x%d", v, counts[verdict.Verdict(v)])
			}
			reason := out.Reason
			if reason == "" {
				reason = r.Reason
			}
			if out.Splat == "" && r.Splat != "" {
				out.Splat, out.SplatText, out.Stack = r.Splat, r.SplatText, r.Stack
			}
			out.Verdict = verdict.Flaky
			out.Reason = fmt.Sprintf("repeats disagree (%s): %s", strings.Join(order, ", "), reason)
			return out
		}
	}
	return out
}
