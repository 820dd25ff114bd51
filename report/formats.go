package report

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"fusevm/verdict"
)

// WriteFiles writes results.json, junit.xml, summary.md and results.ktap
// into dir. It writes every file it can and returns the errors of the
// others.
func (run *Run) WriteFiles(dir string) error {
	return errors.Join(
		run.WriteJSON(filepath.Join(dir, ResultsFile)),
		writeFile(filepath.Join(dir, "junit.xml"), run.WriteJUnit),
		writeFile(filepath.Join(dir, "summary.md"), run.WriteMarkdown),
		writeFile(filepath.Join(dir, "results.ktap"), run.WriteKTAP),
	)
}

// writeFile creates path and fills it with fn.
func writeFile(path string, fn func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := fn(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// WriteMarkdown writes the summary table: one row per scenario, one column
// per kernel and variant, each cell a verdict and whether it was expected,
// followed by the reasons of the unexpected cells.
func (run *Run) WriteMarkdown(w io.Writer) error {
	var cols []string
	colSeen := map[string]bool{}
	var rows []string
	rowSeen := map[string]bool{}
	cells := map[[2]string]*Result{}
	for i := range run.Results {
		r := &run.Results[i]
		col := r.Kernel + " " + r.column()
		if !colSeen[col] {
			colSeen[col] = true
			cols = append(cols, col)
		}
		if !rowSeen[r.Scenario] {
			rowSeen[r.Scenario] = true
			rows = append(rows, r.Scenario)
		}
		cells[[2]string{r.Scenario, col}] = r
	}
	fmt.Fprintf(w, "| scenario | %s |\n|---|%s\n", strings.Join(cols, " | "), strings.Repeat("---|", len(cols)))
	for _, row := range rows {
		fmt.Fprintf(w, "| %s |", row)
		for _, col := range cols {
			r := cells[[2]string{row, col}]
			if r == nil {
				fmt.Fprint(w, " |")
				continue
			}
			fmt.Fprintf(w, " %s |", mdCell(r))
		}
		fmt.Fprintln(w)
	}
	var notes []string
	for _, r := range run.Results {
		if !r.AsExpected || r.KnownIssue != "" {
			why := r.Reason
			if r.KnownIssue != "" {
				why = "known issue: " + r.KnownIssue + "; " + why
			}
			note := fmt.Sprintf("- %s %s, %s: %s", r.Kernel, r.column(), r.Scenario, why)
			if r.Stack != "" {
				note += "\n\n  ```\n  " + strings.ReplaceAll(strings.TrimRight(r.Stack, "\n"), "\n", "\n  ") + "\n  ```"
			}
			notes = append(notes, note)
		}
	}
	if len(notes) > 0 {
		fmt.Fprintf(w, "\n%s\n", strings.Join(notes, "\n"))
	}
	if revs := run.revisions(); len(revs) > 0 {
		fmt.Fprintln(w, "\nKernels:")
		for _, rv := range revs {
			fmt.Fprintf(w, "- %s: %s\n", rv[0], rv[1])
		}
	}
	return nil
}

func mdCell(r *Result) string {
	switch {
	case r.KnownIssue != "" && r.AsExpected:
		return string(r.Verdict) + " (known)"
	case r.AsExpected:
		return string(r.Verdict)
	default:
		return fmt.Sprintf("**%s** (want %s)", r.Verdict, r.Expected)
	}
}

type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Error     *junitMessage `xml:"error,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Body    string `xml:",chardata"`
}

// WriteJUnit writes one test suite per kernel variant. A SKIP cell is
// <skipped> (with the reason, and the end of the build log when the
// variant did not build), an INFRA cell <error> (nothing is known of the
// kernel), and any other result that is not as expected a <failure>.
func (run *Run) WriteJUnit(w io.Writer) error {
	var suites []junitSuite
	idx := map[string]int{}
	for _, r := range run.Results {
		name := r.Kernel + " " + r.column()
		i, ok := idx[name]
		if !ok {
			i = len(suites)
			idx[name] = i
			suites = append(suites, junitSuite{Name: name})
		}
		s := &suites[i]
		c := junitCase{Name: r.Scenario, Classname: name, Time: fmt.Sprintf("%.3f", r.Duration.Seconds()), SystemOut: r.Cell()}
		switch {
		case r.Verdict == verdict.Skip:
			body := r.Reason + "\n"
			if k := run.KernelOf(&r); k != nil && k.BuildLog != "" {
				body += "build log: " + k.BuildLog + "\n" + k.BuildLogTail
			}
			c.Skipped = &junitMessage{Message: r.Reason, Body: body}
			s.Skipped++
		case r.Verdict == verdict.Infra:
			c.Error = &junitMessage{Message: "INFRA: " + r.Reason, Body: r.Reason + "\n"}
			s.Errors++
		case !r.AsExpected:
			c.Failure = &junitMessage{Message: fmt.Sprintf("%s, want %s", r.Verdict, r.Expected), Body: r.Reason + "\n" + r.SplatText + r.Stack}
			s.Failures++
		}
		s.Tests++
		s.Cases = append(s.Cases, c)
	}
	fmt.Fprint(w, xml.Header)
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(junitSuites{Suites: suites}); err != nil {
		return err
	}
	fmt.Fprintln(w)
	return nil
}
