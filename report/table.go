package report

import (
	"fmt"
	"io"
	"strings"

	"fusevm/verdict"
)

// Width is the width of the plain-text outputs: the terminal summary and
// the report to paste into a mail.
const Width = 80

// CellID names a result for `fusevm repro`: kernel/variant/scenario, with
// @config after the variant when the config set is not the base one
// ("debian-7.3/v2@base+debug/close-all-race").
func (r *Result) CellID() string {
	return r.Kernel + "/" + r.columnID() + "/" + r.Scenario
}

// columnID is the variant and its config as in CellID.
func (r *Result) columnID() string {
	if r.Config == "" || r.Config == "base" {
		return r.Variant
	}
	return r.Variant + "@" + r.Config
}

// FindCell finds the result id names: a CellID, or the end of one
// ("v2@base+debug/close-all-race", or a scenario alone) that only one
// result has.
func (run *Run) FindCell(id string) (*Result, error) {
	id = strings.TrimSpace(id)
	var found []*Result
	for i := range run.Results {
		r := &run.Results[i]
		full := r.CellID()
		if full == id {
			return r, nil
		}
		if strings.HasSuffix(full, "/"+id) {
			found = append(found, r)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		var ids []string
		for _, r := range run.Results {
			ids = append(ids, r.CellID())
		}
		return nil, fmt.Errorf("no cell %q in these results; they have:\n  %s", id, strings.Join(ids, "\n  "))
	}
	var ids []string
	for _, r := range found {
		ids = append(ids, r.CellID())
	}
	return nil, fmt.Errorf("cell %q is ambiguous: %s", id, strings.Join(ids, ", "))
}

// KernelOf returns the kernel entry of r's variant, nil if there is none.
func (run *Run) KernelOf(r *Result) *Kernel {
	for i := range run.Kernels {
		k := &run.Kernels[i]
		if k.Name == r.Kernel && k.Variant == r.Variant && k.Config == r.Config {
			return k
		}
	}
	return nil
}

// grid is the results as a table: rows are scenarios, columns kernel
// variants, both in the order the run met them.
type grid struct {
	cols    []string // kernel + " " + column()
	heads   []string // what the header shows
	rows    []string
	cells   map[[2]string]*Result
	kernels int // distinct kernels
}

func (run *Run) grid() *grid {
	g := &grid{cells: map[[2]string]*Result{}}
	colSeen, rowSeen, kSeen := map[string]bool{}, map[string]bool{}, map[string]bool{}
	var labels, full []string
	for i := range run.Results {
		r := &run.Results[i]
		col := r.Kernel + " " + r.column()
		if !colSeen[col] {
			colSeen[col] = true
			g.cols = append(g.cols, col)
			labels, full = append(labels, r.column()), append(full, col)
		}
		if !kSeen[r.Kernel] {
			kSeen[r.Kernel] = true
			g.kernels++
		}
		if !rowSeen[r.Scenario] {
			rowSeen[r.Scenario] = true
			g.rows = append(g.rows, r.Scenario)
		}
		g.cells[[2]string{r.Scenario, col}] = r
	}
	g.heads = labels
	if g.kernels > 1 {
		g.heads = full
	}
	return g
}

// mark is a cell of the plain-text table: the verdict, then "!" when it
// is not as expected or "*" when it is a known issue.
func mark(r *Result) string {
	switch {
	case r == nil:
		return "-"
	case !r.AsExpected:
		return string(r.Verdict) + "!"
	case r.KnownIssue != "":
		return string(r.Verdict) + "*"
	}
	return string(r.Verdict)
}

// WriteTable writes the scenario x variant table, indented by indent
// spaces, in at most width columns when the headers fit (otherwise the
// columns are numbered and named below the table), and a line that
// explains the marks used.
func (run *Run) WriteTable(w io.Writer, indent, width int) {
	g := run.grid()
	if len(g.rows) == 0 {
		return
	}
	pad := strings.Repeat(" ", indent)
	first := len("scenario")
	for _, row := range g.rows {
		first = max(first, len(row))
	}
	cellWidth := make([]int, len(g.cols))
	for j, col := range g.cols {
		for _, row := range g.rows {
			cellWidth[j] = max(cellWidth[j], len(mark(g.cells[[2]string{row, col}])))
		}
	}
	heads := g.heads
	total := func() int {
		n := indent + first
		for j := range heads {
			n += 2 + max(cellWidth[j], len(heads[j]))
		}
		return n
	}
	numbered := false
	if total() > width {
		numbered = true
		heads = make([]string, len(g.cols))
		for j := range heads {
			heads[j] = fmt.Sprintf("[%d]", j+1)
		}
	}
	var b strings.Builder
	line := func(name string, cells []string) {
		s := pad + fmt.Sprintf("%-*s", first, name)
		for j, c := range cells {
			s += "  " + fmt.Sprintf("%-*s", max(cellWidth[j], len(heads[j])), c)
		}
		b.WriteString(strings.TrimRight(s, " ") + "\n")
	}
	line("scenario", heads)
	seen := map[string]bool{}
	for _, row := range g.rows {
		cells := make([]string, len(g.cols))
		for j, col := range g.cols {
			r := g.cells[[2]string{row, col}]
			cells[j] = mark(r)
			if r != nil && !r.AsExpected {
				seen["!"] = true
			} else if r != nil && r.KnownIssue != "" {
				seen["*"] = true
			}
		}
		line(row, cells)
	}
	if numbered {
		for j, col := range g.cols {
			name := g.heads[j]
			if g.kernels == 1 {
				name = col
			}
			fmt.Fprintf(&b, "%s%s %s\n", pad, heads[j], name)
		}
	}
	var legend []string
	if seen["!"] {
		legend = append(legend, "! not as expected")
	}
	if seen["*"] {
		legend = append(legend, "* known issue")
	}
	if len(legend) > 0 {
		fmt.Fprintf(&b, "%s(%s)\n", pad, strings.Join(legend, "; "))
	}
	io.WriteString(w, b.String())
}

// Group is one or more results that are not as expected for the same
// cause: the cells of one kernel variant with the same verdict and
// reason and no kernel report of their own (a variant that did not
// build gives one group, not a line per scenario).
type Group struct {
	// Results are the cells, in run order; the first stands for all.
	Results []*Result
}

// Column is the kernel variant of the group.
func (g Group) Column() string { return g.Results[0].Kernel + " " + g.Results[0].column() }

// Scenarios are the scenarios of the group.
func (g Group) Scenarios() []string {
	var out []string
	for _, r := range g.Results {
		out = append(out, r.Scenario)
	}
	return out
}

// Headline is "<variant> / <scenario>: CRASH, want PASS", or for several
// scenarios "<variant>: SKIP in 18 scenarios".
func (g Group) Headline() string {
	r := g.Results[0]
	if len(g.Results) > 1 {
		return fmt.Sprintf("%s: %s in %d scenarios (%s)", g.Column(), r.Verdict, len(g.Results), strings.Join(g.Scenarios(), ", "))
	}
	return fmt.Sprintf("%s / %s: %s", g.Column(), r.Scenario, r.want())
}

// want is "CRASH, want PASS", or "PASS, known issue CRASH no longer
// reproduces".
func (r *Result) want() string {
	if r.KnownIssue != "" && r.Verdict != verdict.Skip && r.Verdict != verdict.Infra {
		return fmt.Sprintf("%s, known issue %s no longer reproduces", r.Verdict, r.Expected)
	}
	return fmt.Sprintf("%s, want %s", r.Verdict, r.Expected)
}

// Unexpected groups the results that are not as expected (see Group).
func (run *Run) Unexpected() []Group {
	var out []Group
	idx := map[string]int{}
	for i := range run.Results {
		r := &run.Results[i]
		if r.AsExpected {
			continue
		}
		if r.Splat == "" && r.Stack == "" && r.Reason != "" {
			key := r.Kernel + "\x00" + r.column() + "\x00" + string(r.Verdict) + "\x00" + r.Reason
			if j, ok := idx[key]; ok {
				out[j].Results = append(out[j].Results, r)
				continue
			}
			idx[key] = len(out)
		}
		out = append(out, Group{Results: []*Result{r}})
	}
	return out
}

// WriteSummary writes what a terminal shows at the end of a run: the
// scenario x variant table with unexpected cells marked, then each
// unexpected cell (or group of cells with one cause) with its reason, the
// known issues met, and each kernel's exact revision. A section with
// nothing to say is left out.
func (run *Run) WriteSummary(w io.Writer) {
	var b strings.Builder
	run.WriteTable(&b, 0, Width)
	if groups := run.Unexpected(); len(groups) > 0 {
		fmt.Fprintf(&b, "\nnot as expected:\n")
		for _, g := range groups {
			wrapTo(&b, g.Headline(), 2, 6, Width)
			r := g.Results[0]
			if r.Reason != "" {
				wrapTo(&b, r.Reason, 6, 6, Width)
			}
		}
	}
	var known []string
	for _, r := range run.Results {
		if r.AsExpected && r.KnownIssue != "" {
			known = append(known, fmt.Sprintf("%s %s / %s: %s: %s", r.Kernel, r.column(), r.Scenario, r.Verdict, r.KnownIssue))
		}
	}
	if len(known) > 0 {
		fmt.Fprintf(&b, "\nknown issues:\n")
		for _, k := range known {
			wrapTo(&b, k, 2, 6, Width)
		}
	}
	if revs := run.revisions(); len(revs) > 0 {
		fmt.Fprintln(&b, "\nkernels:")
		for _, rv := range revs {
			wrapTo(&b, rv[0]+": "+rv[1], 2, 6, Width)
		}
	}
	io.WriteString(w, b.String())
}

// wrapTo writes text wrapped at width: the first line indented by first
// spaces, the others by rest. A word longer than a line gets a line of its
// own, indented by 2 at most so that it fits when it can.
func wrapTo(b *strings.Builder, text string, first, rest, width int) {
	for i, para := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		ind := first
		if i > 0 {
			ind = rest
		}
		line := ""
		flush := func() {
			if line != "" {
				b.WriteString(strings.Repeat(" ", ind) + line + "\n")
				line, ind = "", rest
			}
		}
		words := strings.Fields(para)
		if len(words) == 0 {
			b.WriteString("\n")
			continue
		}
		for _, word := range words {
			switch {
			case line == "" && ind+len(word) > width:
				b.WriteString(strings.Repeat(" ", max(0, min(ind, width-len(word), 2))) + word + "\n")
				ind = rest
			case line == "":
				line = word
			case ind+len(line)+1+len(word) <= width:
				line += " " + word
			default:
				flush()
				if ind+len(word) > width {
					b.WriteString(strings.Repeat(" ", max(0, min(ind, width-len(word), 2))) + word + "\n")
					continue
				}
				line = word
			}
		}
		flush()
	}
}
