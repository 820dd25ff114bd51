package report

import (
	"fmt"
	"io"
	"strings"

	"fusevm/verdict"
)

// WriteKTAP writes the results in KTAP version 1, the kernel's test output
// format (Documentation/dev-tools/ktap.rst), which KernelCI, LAVA and
// kunit.py read: one test per kernel variant (named like CellID's
// kernel/variant[@config]), in the order of the run, each with a subtest
// per scenario (and "(boot)" or "(features)" row):
//
//   - a result as expected is "ok"; one whose verdict is not PASS (a
//     reproducer's FAIL, a known issue) says so with the XFAIL directive;
//   - SKIP is "ok ... # SKIP <reason>";
//   - a result not as expected is "not ok", HANG with the TIMEOUT
//     directive and INFRA with ERROR, preceded by diagnostic lines: the
//     verdict and the expected one, the reason, the kernel report's title
//     and its decoded stack.
//
// A variant is "not ok" when a subtest is, "ok ... # SKIP" when every
// subtest was skipped (it did not build), else "ok". Its diagnostic lines
// name the kernel's exact revision, the patches and the claims.
func (run *Run) WriteKTAP(w io.Writer) error {
	g := run.grid()
	var b strings.Builder
	b.WriteString("KTAP version 1\n")
	fmt.Fprintf(&b, "# fusevm: %d kernel variant(s), %d result(s)\n", len(g.cols), len(run.Results))
	fmt.Fprintf(&b, "1..%d\n", len(g.cols))
	for i, col := range g.cols {
		var rs []*Result
		for j := range run.Results {
			r := &run.Results[j]
			if r.Kernel+" "+r.column() == col {
				rs = append(rs, r)
			}
		}
		name := ktapName(rs[0].Kernel + "/" + rs[0].columnID())
		b.WriteString("  KTAP version 1\n")
		fmt.Fprintf(&b, "  # Subtest: %s\n", name)
		if k := run.KernelOf(rs[0]); k != nil {
			ktapKernel(&b, k)
		}
		fmt.Fprintf(&b, "  1..%d\n", len(rs))
		failed, skipped := false, 0
		for n, r := range rs {
			line, ok, skip := ktapResult(&b, r)
			fmt.Fprintf(&b, "  %s %d %s%s\n", okWord(ok), n+1, ktapName(r.Scenario), line)
			failed = failed || !ok
			if skip {
				skipped++
			}
		}
		switch {
		case failed:
			fmt.Fprintf(&b, "not ok %d %s\n", i+1, name)
		case skipped == len(rs):
			fmt.Fprintf(&b, "ok %d %s # SKIP %s\n", i+1, name, ktapText(rs[0].Reason))
		default:
			fmt.Fprintf(&b, "ok %d %s\n", i+1, name)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// ktapKernel writes a variant's diagnostic lines.
func ktapKernel(b *strings.Builder, k *Kernel) {
	if k.Identity != "" {
		ktapDiag(b, "  ", "kernel: "+k.Identity)
	}
	if len(k.Patches) > 0 {
		ktapDiag(b, "  ", "patches: "+strings.Join(k.Patches, " "))
	}
	if len(k.Claims) > 0 {
		ktapDiag(b, "  ", "claims: "+strings.Join(k.Claims, " "))
	}
	if k.BuildError != "" {
		ktapDiag(b, "  ", "build: "+k.BuildError)
	}
}

// ktapResult writes the diagnostic lines of r (into b, indented for a
// subtest) and returns the directive part of its result line, whether it
// is ok and whether it was skipped.
func ktapResult(b *strings.Builder, r *Result) (directive string, ok, skip bool) {
	const ind = "    "
	switch {
	case r.Verdict == verdict.Skip:
		return " # SKIP " + ktapText(r.Reason), true, true
	case r.AsExpected && r.Verdict == verdict.Pass:
		return "", true, false
	case r.AsExpected:
		why := r.KnownIssue
		if why == "" {
			why = r.Reason
		}
		if why == "" {
			return fmt.Sprintf(" # XFAIL %s as expected", r.Verdict), true, false
		}
		return fmt.Sprintf(" # XFAIL %s as expected: %s", r.Verdict, ktapText(why)), true, false
	}
	ktapDiag(b, ind, fmt.Sprintf("%s: %s", r.Scenario, r.want()))
	if r.Reason != "" {
		ktapDiag(b, ind, r.Reason)
	}
	if r.Splat != "" && !strings.Contains(r.Reason, r.Splat) {
		ktapDiag(b, ind, "kernel report: "+r.Splat)
	}
	if r.Stack != "" {
		ktapDiag(b, ind, "stack:")
		for _, l := range strings.Split(strings.TrimRight(r.Stack, "\n"), "\n") {
			ktapDiag(b, ind, "  "+l)
		}
	}
	if r.ConsoleLog != "" {
		ktapDiag(b, ind, "console: "+r.ConsoleLog)
	}
	switch r.Verdict {
	case verdict.Hang:
		return " # TIMEOUT " + ktapText(r.Reason), false, false
	case verdict.Infra:
		return " # ERROR " + ktapText(r.Reason), false, false
	}
	return "", false, false
}

func okWord(ok bool) string {
	if ok {
		return "ok"
	}
	return "not ok"
}

// ktapDiag writes text as diagnostic lines ("# ..."), one per line of
// text.
func ktapDiag(b *strings.Builder, indent, text string) {
	for _, l := range strings.Split(text, "\n") {
		l = ktapEnd.Replace(strings.TrimRight(strings.ReplaceAll(l, "\r", ""), " \t"))
		if strings.HasPrefix(strings.TrimSpace(l), "Subtest:") {
			l = "- " + l // "# Subtest:" would open a test
		}
		b.WriteString(indent + "# " + l + "\n")
	}
}

// ktapName is a test name: KTAP allows any text but "#" and newlines.
func ktapName(s string) string {
	return strings.NewReplacer("#", "-", "\n", " ", "\r", " ").Replace(s)
}

// ktapEnd are the console lines after which kunit.py stops reading KTAP
// (its KTAP_END): a diagnostic quoting one is reworded.
var ktapEnd = strings.NewReplacer(
	"List of all partitions:", "List of all partitions -",
	"Kernel panic - not syncing: VFS:", "Kernel panic - not syncing (VFS):",
	"reboot: System halted", "reboot (System halted)",
)

// ktapText is text on one line of KTAP.
func ktapText(s string) string {
	s = strings.Join(strings.Fields(strings.ReplaceAll(s, "\r", " ")), " ")
	return ktapEnd.Replace(s)
}
