package report

import (
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"fusevm/verdict"
)

// TextOptions complete what results.json does not say, for WriteText.
type TextOptions struct {
	// Dir is the results directory, as the reproduce commands name it
	// (best absolute).
	Dir string
	// TestedBy is "Name <email>", the tester; the Tested-by: line is
	// written only when it is set and every result is as expected.
	TestedBy string
	// Program is the command that runs fusevm ("fusevm" when empty).
	Program string
	// ScenarioArg, if set, gives what `fusevm run --scenarios` takes for a
	// scenario name (a built-in name, or the path of its script); the name
	// is used as it is otherwise.
	ScenarioArg func(name string) string
}

// WriteText writes a plain-text report of the run, at most Width columns
// wide (a word longer than a line, such as a digest or a path, keeps a
// line of its own), to paste into a reply on a patch series' thread: what
// was tested (each kernel's exact revision, the series versions with
// their patches and claims, the config sets, the accelerator), the
// scenario x variant table, every result that is not as expected with its
// reason and decoded stack and the commands that reproduce it, and a
// Tested-by: line when every result is as expected.
func (run *Run) WriteText(w io.Writer, o TextOptions) error {
	prog := o.Program
	if prog == "" {
		prog = "fusevm"
	}
	var b strings.Builder
	groups := run.Unexpected()
	n := len(run.Results)
	switch {
	case n == 0:
		fmt.Fprintf(&b, "fusevm: no results\n")
	case len(groups) == 0:
		fmt.Fprintf(&b, "fusevm: all %d results as expected\n", n)
	default:
		bad := 0
		for _, g := range groups {
			bad += len(g.Results)
		}
		fmt.Fprintf(&b, "fusevm: %d of %d results NOT as expected\n", bad, n)
	}

	b.WriteString("\nWhat was tested\n")
	for _, rv := range run.revisions() {
		wrapTo(&b, "kernel "+rv[0]+": "+rv[1], 2, 6, Width)
	}
	for _, k := range run.Kernels {
		run.writeVariant(&b, k)
	}
	if accels := run.accels(); len(accels) > 0 {
		wrapTo(&b, "accelerator: "+strings.Join(accels, ", "), 2, 6, Width)
	}
	if !run.Started.IsZero() {
		line := "run: " + run.Started.UTC().Format("2006-01-02 15:04 UTC")
		if !run.Finished.IsZero() {
			line += fmt.Sprintf(", %s", run.Finished.Sub(run.Started).Round(1e9))
		}
		wrapTo(&b, line, 2, 6, Width)
	}
	if len(run.Command) > 0 {
		argv := append([]string{filepath.Base(run.Command[0])}, run.Command[1:]...)
		wrapTo(&b, "command: "+shellJoin(argv), 2, 6, Width)
	}

	if len(run.Results) > 0 {
		b.WriteString("\nResults (rows: scenarios, columns: kernel variants)\n")
		run.WriteTable(&b, 2, Width)
	}

	if len(groups) > 0 {
		b.WriteString("\nNot as expected\n")
		for i, g := range groups {
			run.writeGroup(&b, i+1, g, prog, o)
		}
	}
	var known []string
	for _, r := range run.Results {
		if r.AsExpected && r.KnownIssue != "" {
			known = append(known, fmt.Sprintf("%s %s / %s: %s: %s", r.Kernel, r.column(), r.Scenario, r.Verdict, r.KnownIssue))
		}
	}
	if len(known) > 0 {
		b.WriteString("\nKnown issues (as expected)\n")
		for _, k := range known {
			wrapTo(&b, k, 2, 6, Width)
		}
	}
	if len(groups) == 0 && n > 0 && o.TestedBy != "" {
		fmt.Fprintf(&b, "\nTested-by: %s\n", o.TestedBy)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeVariant describes one kernel variant: its patches, claims, config
// and how it was built.
func (run *Run) writeVariant(b *strings.Builder, k Kernel) {
	head := "variant " + k.Name + " " + k.Variant
	switch {
	case k.Prebuilt:
		head += ": prebuilt " + k.Spec
	case len(k.Patches) == 0:
		head += ": no patches"
	default:
		head += fmt.Sprintf(": %d patch(es)", len(k.Patches))
		if k.Series != "" {
			head += " from " + k.Series
		}
	}
	if k.Config != "" {
		head += ", config " + k.Config
	}
	wrapTo(b, head, 2, 6, Width)
	for i, p := range k.Patches {
		wrapTo(b, fmt.Sprintf("[%d/%d] %s", i+1, len(k.Patches), p), 6, 10, Width)
	}
	if len(k.Claims) > 0 {
		wrapTo(b, "claims: "+strings.Join(k.Claims, ", "), 6, 10, Width)
	}
	if k.Boot != nil && k.Boot.Cmdline != "" {
		wrapTo(b, "kernel command line: "+k.Boot.Cmdline, 6, 10, Width)
	}
	if k.BuildError != "" {
		wrapTo(b, "did not build: "+k.BuildError, 6, 10, Width)
	}
}

// accels are the accelerators the results ran under.
func (run *Run) accels() []string {
	var out []string
	for _, r := range run.Results {
		if r.Accel != "" && !slices.Contains(out, r.Accel) {
			out = append(out, r.Accel)
		}
	}
	return out
}

// writeGroup writes one entry of "Not as expected".
func (run *Run) writeGroup(b *strings.Builder, n int, g Group, prog string, o TextOptions) {
	dir := o.Dir
	r := g.Results[0]
	fmt.Fprintln(b)
	wrapTo(b, fmt.Sprintf("%d. %s", n, g.Headline()), 2, 5, Width)
	if r.Reason != "" {
		wrapTo(b, r.Reason, 5, 5, Width)
	}
	if r.Splat != "" && !strings.Contains(r.Reason, r.Splat) {
		wrapTo(b, "kernel report: "+r.Splat, 5, 5, Width)
	}
	if r.Stack != "" {
		b.WriteString("     stack:\n")
		for _, l := range strings.Split(strings.TrimRight(r.Stack, "\n"), "\n") {
			writeVerbatim(b, l, 7, Width)
		}
	}
	k := run.KernelOf(r)
	if k != nil && k.BuildLog != "" {
		wrapTo(b, "build log: "+k.BuildLog, 5, 7, Width)
		if k.BuildLogTail != "" {
			lines := strings.Split(strings.TrimRight(k.BuildLogTail, "\n"), "\n")
			if len(lines) > 10 {
				lines = lines[len(lines)-10:]
			}
			for _, l := range lines {
				writeVerbatim(b, "| "+l, 7, Width)
			}
		}
	}
	if r.ConsoleLog != "" {
		wrapTo(b, "console: "+r.ConsoleLog, 5, 7, Width)
	}
	var cmds [][]string
	if k != nil && k.Boot != nil && r.Scenario != "" && !strings.HasPrefix(r.Scenario, "(") {
		cmd := []string{prog, "repro", dirOrDot(dir), r.CellID()}
		if r.Verdict == verdict.Flaky || len(r.Runs) > 1 {
			cmd = append(cmd, "--count", fmt.Sprint(max(5, len(r.Runs))))
		}
		cmds = append(cmds, cmd)
	}
	if k != nil && len(k.RunArgs) > 0 {
		cmd := append([]string{prog, "run"}, k.RunArgs...)
		if !strings.HasPrefix(r.Scenario, "(") {
			names := g.Scenarios()
			if o.ScenarioArg != nil {
				for i, s := range names {
					names[i] = o.ScenarioArg(s)
				}
			}
			cmd = append(cmd, "--scenarios", strings.Join(names, ","))
		}
		cmds = append(cmds, cmd)
	}
	if len(cmds) > 0 {
		b.WriteString("     reproduce:\n")
		for _, c := range cmds {
			writeCommand(b, c, 7, Width)
		}
	}
}

// writeVerbatim writes line indented, keeping its own leading spaces;
// a line too long is wrapped at spaces, its continuations indented by 4
// more.
func writeVerbatim(b *strings.Builder, line string, indent, width int) {
	line = strings.TrimRight(strings.ReplaceAll(line, "\t", "        "), " ")
	lead := len(line) - len(strings.TrimLeft(line, " "))
	pad := strings.Repeat(" ", indent+lead)
	text := line[lead:]
	for len(pad)+len(text) > width {
		cut := strings.LastIndexByte(text[:max(1, width-len(pad))], ' ')
		if cut <= 0 {
			break
		}
		b.WriteString(pad + text[:cut] + "\n")
		text = strings.TrimLeft(text[cut:], " ")
		if len(pad) < indent+lead+4 {
			pad += "    "
		}
	}
	b.WriteString(pad + text + "\n")
}

func dirOrDot(dir string) string {
	if dir == "" {
		return "."
	}
	return dir
}

// writeCommand writes argv as a shell command, continued with " \" over
// lines of at most width columns where it can.
func writeCommand(b *strings.Builder, argv []string, indent, width int) {
	line := strings.Repeat(" ", indent)
	start := len(line)
	for i, a := range argv {
		q := shellQuote(a)
		if i > 0 && len(line)+1+len(q)+2 > width {
			b.WriteString(line + " \\\n")
			line = strings.Repeat(" ", indent+4)
			start = len(line)
		}
		if len(line) > start {
			line += " "
		}
		line += q
	}
	b.WriteString(line + "\n")
}

// shellJoin quotes argv for a POSIX shell.
func shellJoin(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@+,%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// GitTester is the tester of TextOptions.TestedBy by default: "Name
// <email>" from git's user.name and user.email, "" when either is unset
// (or git is missing).
func GitTester() string {
	get := func(key string) string {
		out, err := exec.Command("git", "config", "--get", key).Output()
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(out))
	}
	name, email := get("user.name"), get("user.email")
	if name == "" || email == "" {
		return ""
	}
	return fmt.Sprintf("%s <%s>", name, email)
}
