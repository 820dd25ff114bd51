package mutate

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// percent shows a fraction as a percentage, "-" when nothing counts.
func percent(c Counts) string {
	if c.Killed+c.Survived <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*c.KillRate())
}

// diffPart is the diff of a mutant's patch, without its mail header.
func diffPart(m Mutant) string {
	s := string(m.Diff.Data)
	if i := strings.Index(s, "diff --git "); i >= 0 {
		s = s[i:]
	}
	return strings.TrimRight(s, "\n")
}

// WriteMarkdown writes summary.md of a mutation run: the totals, a table
// per operator, then every survivor with its diff and the scenarios that
// ran, the mutants that did not build with their error, the infra ones,
// the equivalent ones with their reason, the killed ones the equivalence
// file still lists, and the killed ones with their killers.
func WriteMarkdown(w io.Writer, title string, s Summary, outs []Outcome) error {
	b := bufio.NewWriter(w)
	c := s.Counts()
	fmt.Fprintf(b, "# %s\n\n", title)
	fmt.Fprintf(b, "Kill rate **%s** (killed / (killed + survived): the built mutants, less infra and equivalent).\n\n", percent(c))
	fmt.Fprintf(b, "| generated | built | killed | survived | equivalent | not built | infra |\n")
	fmt.Fprintf(b, "|---:|---:|---:|---:|---:|---:|---:|\n")
	fmt.Fprintf(b, "| %d | %d | %d | %d | %d | %d | %d |\n\n", c.Generated, c.Built, c.Killed, c.Survived, c.Equivalent, c.NotBuilt, c.Infra)
	if len(s.PerOperator) > 0 {
		fmt.Fprintf(b, "## Per operator\n\n")
		fmt.Fprintf(b, "| operator | generated | killed | survived | equivalent | not built | infra | kill rate |\n")
		fmt.Fprintf(b, "|---|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, op := range s.operatorNames() {
			p := s.PerOperator[op]
			fmt.Fprintf(b, "| %s | %d | %d | %d | %d | %d | %d | %s |\n", op, p.Generated, p.Killed, p.Survived, p.Equivalent, p.NotBuilt, p.Infra, percent(*p))
		}
		fmt.Fprintln(b)
	}
	// section writes the heading (and what follows it in the same
	// string), then each outcome that is, if there is one.
	section := func(is func(Outcome) bool, heading string, list bool, each func(o Outcome)) {
		first := true
		for _, o := range outs {
			if !is(o) {
				continue
			}
			if first {
				fmt.Fprintf(b, "## %s\n\n", heading)
				first = false
			}
			each(o)
		}
		if !first && list {
			fmt.Fprintln(b)
		}
	}
	section(inState(Survived), "Survivors", false, func(o Outcome) {
		m := o.Mutant
		fmt.Fprintf(b, "### `%s`\n\n", m.ID)
		fmt.Fprintf(b, "%s at %s:%d (patch %s). ", m.Operator, m.File, m.Line, m.Patch)
		if len(o.Scenarios) > 0 {
			fmt.Fprintf(b, "Scenarios that ran: %s.\n\n", strings.Join(o.Scenarios, ", "))
		} else {
			fmt.Fprintf(b, "No scenario ran.\n\n")
		}
		fmt.Fprintf(b, "```diff\n%s\n```\n\n", diffPart(m))
	})
	section(inState(NotBuilt), "Not built", true, func(o Outcome) {
		fmt.Fprintf(b, "- `%s`: %s\n", o.Mutant.ID, firstLine(o.Reason))
	})
	section(inState(Infra), "Infra (nothing known)", true, func(o Outcome) {
		fmt.Fprintf(b, "- `%s`: %s\n", o.Mutant.ID, firstLine(o.Reason))
	})
	section(inState(Equivalent), "Equivalent", true, func(o Outcome) {
		fmt.Fprintf(b, "- `%s`: %s\n", o.Mutant.ID, o.Reason)
	})
	section(func(o Outcome) bool { return o.Listed }, "Listed as equivalent, but killed\n\nTheir entries in the equivalence file explain nothing in this run: remove them, unless another configuration (or another run of a race) still needs them.", true, func(o Outcome) {
		fmt.Fprintf(b, "- `%s` by %s\n", o.Mutant.ID, strings.Join(o.Killers, ", "))
	})
	section(inState(Killed), "Killed", true, func(o Outcome) {
		fmt.Fprintf(b, "- `%s` by %s", o.Mutant.ID, strings.Join(o.Killers, ", "))
		if r := firstLine(o.Reason); r != "" {
			fmt.Fprintf(b, ": %s", r)
		}
		fmt.Fprintln(b)
	})
	return b.Flush()
}

// inState selects the outcomes in state st.
func inState(st State) func(Outcome) bool {
	return func(o Outcome) bool { return o.State == st }
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// WriteText writes a short terminal summary: a totals line, a line of
// killed/counted per operator, one line per survivor,
// "SURVIVED <id>: - <original> / + <mutated>", and one per killed mutant
// the equivalence file still lists ("KILLED BUT LISTED <id>: ...").
func WriteText(w io.Writer, s Summary, outs []Outcome) {
	c := s.Counts()
	fmt.Fprintf(w, "mutants: %d generated, %d built, %d killed, %d survived, %d equivalent, %d not built, %d infra; kill rate %s\n",
		c.Generated, c.Built, c.Killed, c.Survived, c.Equivalent, c.NotBuilt, c.Infra, percent(c))
	var per []string
	for _, op := range s.operatorNames() {
		p := s.PerOperator[op]
		per = append(per, fmt.Sprintf("%s %d/%d", op, p.Killed, p.Killed+p.Survived))
	}
	if len(per) > 0 {
		fmt.Fprintf(w, "killed per operator: %s\n", strings.Join(per, ", "))
	}
	for _, o := range outs {
		switch {
		case o.State == Survived:
			fmt.Fprintf(w, "SURVIVED %s\n", o.Mutant.Describe())
		case o.Listed:
			fmt.Fprintf(w, "KILLED BUT LISTED %s: killed by %s; its equivalence entry explains nothing in this run\n", o.Mutant.ID, strings.Join(o.Killers, ", "))
		}
	}
}

// WriteMutants writes each mutant's patch to dir (created if needed) under
// its Diff.Name, "mutant-<id>.patch", for a user to apply on top of the
// series.
func WriteMutants(dir string, ms []Mutant) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, m := range ms {
		name := m.Diff.Name
		if name == "" {
			name = PatchName(m.ID)
		}
		if err := os.WriteFile(filepath.Join(dir, name), m.Diff.Data, 0o644); err != nil {
			return err
		}
	}
	return nil
}
