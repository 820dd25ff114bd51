package mutate

import (
	"fmt"
	"sort"
	"strings"

	"fusevm/kernel"
)

// Mutant is one small wrong version of the code a series adds.
type Mutant struct {
	// ID is stable and readable: "<file>:<line>:<operator>", plus "#2",
	// "#3"... when one file, line and operator give several.
	ID       string `json:"id"`
	Operator string `json:"operator"`
	// Patch is the name of the series patch that adds the mutated
	// line(s).
	Patch string `json:"patch"`
	// File is the tree path, e.g. "fs/fuse/backing.c".
	File string `json:"file"`
	// Line is the first mutated line, numbered as the adding patch leaves
	// the file (its hunk's "+start"). A later patch of the series that
	// changes the file above it moves the line; Diff is numbered as the
	// whole series leaves the file.
	Line int `json:"line"`
	// Original is the original line(s), as in the patch (without the
	// leading '+'), joined by newlines.
	Original string `json:"original"`
	// Mutated is the replacement line(s); "" when they are deleted.
	Mutated string `json:"mutated"`
	// Diff is a git-format patch that applies with `git apply` on top of
	// the whole series.
	Diff kernel.Patch `json:"-"`
}

// Generate returns the mutants of every line the series adds to .c files
// (headers are not mutated), in a deterministic order: patch order, file,
// line, operator order, occurrence. Lines a later patch of the series
// removes again are not mutated. Mutants that make the same file are one,
// named after the operator that comes first in Operators; IDs are given
// over all operators, so the operators argument (nil: all) only selects
// and an ID does not depend on it. An unknown operator name is an error.
func Generate(s *kernel.Series, operators []string) ([]Mutant, error) {
	selected := map[string]bool{}
	for _, op := range operators {
		if operatorFuncs[op] == nil {
			return nil, fmt.Errorf("unknown mutation operator %q (valid: %s)", op, strings.Join(Operators, ", "))
		}
		selected[op] = true
	}
	if len(operators) == 0 {
		for _, op := range Operators {
			selected[op] = true
		}
	}
	mod := newModel()
	var units []*unit
	fnSeq := 0
	for pi, p := range s.Patches {
		fds, err := parseDiff(string(p.Data))
		if err != nil {
			return nil, fmt.Errorf("patch %s: %w", p.Name, err)
		}
		for _, fd := range fds {
			posts := mod.apply(fd)
			if fd.newPath == "" {
				continue
			}
			for k, h := range fd.hunks {
				units = append(units, newUnit(pi, p.Name, fd.newPath, h, posts[k], &fnSeq))
			}
		}
	}
	g := &genCtx{callbacks: findCallbacks(units)}

	type named struct {
		c     *cand
		m     Mutant
		opIdx int
		key   string
	}
	var all []named
	seq := 0
	for _, u := range units {
		if !strings.HasSuffix(u.file, ".c") {
			continue
		}
		for opIdx, op := range Operators {
			for _, c := range operatorFuncs[op](u, g) {
				seq++
				c.seq = seq
				m, key, ok := describe(c)
				if !ok {
					continue
				}
				all = append(all, named{c, m, opIdx, key})
			}
		}
	}
	sort.SliceStable(all, func(i, j int) bool {
		a, b := all[i], all[j]
		switch {
		case a.c.u.patchIdx != b.c.u.patchIdx:
			return a.c.u.patchIdx < b.c.u.patchIdx
		case a.m.File != b.m.File:
			return a.m.File < b.m.File
		case a.m.Line != b.m.Line:
			return a.m.Line < b.m.Line
		case a.opIdx != b.opIdx:
			return a.opIdx < b.opIdx
		}
		return a.c.seq < b.c.seq
	})
	seen := map[string]bool{}
	count := map[string]int{}
	var out []Mutant
	for _, n := range all {
		if seen[n.key] {
			continue
		}
		seen[n.key] = true
		m := n.m
		base := fmt.Sprintf("%s:%d:%s", m.File, m.Line, m.Operator)
		count[base]++
		m.ID = base
		if count[base] > 1 {
			m.ID = fmt.Sprintf("%s#%d", base, count[base])
		}
		if !selected[m.Operator] {
			continue
		}
		text, ok := renderPatch(mod, n.c, m)
		if !ok {
			continue
		}
		p, err := kernel.ParsePatch(PatchName(m.ID), []byte(text))
		if err != nil {
			return nil, fmt.Errorf("mutant %s: %w", m.ID, err)
		}
		m.Diff = *p
		out = append(out, m)
	}
	return out, nil
}

// Describe shows a mutant on one line: "<ID>: - <original> / + <mutated>",
// the code trimmed and its lines joined by spaces ("(deleted)" when the
// mutant deletes the lines).
func (m Mutant) Describe() string {
	return fmt.Sprintf("%s: - %s / + %s", m.ID, oneLine(m.Original), oneLine(m.Mutated))
}

// PatchName is the file name of a mutant's patch: "mutant-<id>.patch" with
// every character but letters, digits, '.', '_' and '-' made a '-'.
func PatchName(id string) string {
	b := []byte(id)
	for i, c := range b {
		if !(isIdentByte(c) || c == '.' || c == '-') {
			b[i] = '-'
		}
	}
	return "mutant-" + string(b) + ".patch"
}

// describe fills a mutant's fields from a candidate and returns the key
// that identifies the file it makes; ok is false for a candidate that
// changes nothing or lines a later patch removed.
func describe(c *cand) (Mutant, string, bool) {
	u := c.u
	var orig, mut []string
	var key strings.Builder
	first := -1
	for _, ch := range c.changes {
		l := u.lines[ch.line]
		orig = append(orig, l.text)
		if !ch.del {
			mut = append(mut, ch.text)
		}
		if ch.same || !ch.del && ch.text == l.text {
			continue
		}
		if l.fl == nil || l.fl.gone {
			return Mutant{}, "", false
		}
		if first < 0 {
			first = ch.line
		}
		fmt.Fprintf(&key, "%d:", l.fl.id)
		if ch.del {
			key.WriteString("\x00\n")
		} else {
			key.WriteString(ch.text + "\n")
		}
	}
	if first < 0 {
		return Mutant{}, "", false
	}
	m := Mutant{
		Operator: c.op,
		Patch:    u.patchName,
		File:     u.file,
		Line:     u.lines[c.changes[0].line].no,
		Original: strings.Join(orig, "\n"),
		Mutated:  strings.Join(mut, "\n"),
	}
	return m, key.String(), true
}

// Who a mutant's patch says it is from.
const mutantAuthor = "fusevm mutate <mutate@fusevm.invalid>"

// renderPatch writes a mutant as a git-format patch against the file as
// the whole series leaves it: one hunk from its first to its last changed
// line, the lines between as context, and up to 3 lines of context on each
// side (as many on both, when there are any on both).
func renderPatch(mod *model, c *cand, m Mutant) (string, bool) {
	u := c.u
	byLine := map[*fline]change{}
	var lo, hi *fline
	for _, ch := range c.changes {
		fl := u.lines[ch.line].fl
		if fl == nil || fl.gone {
			return "", false
		}
		byLine[fl] = ch
		if lo == nil || fl.no < lo.no {
			lo = fl
		}
		if hi == nil || fl.no > hi.no {
			hi = fl
		}
	}
	list := mod.files[lo.path]
	at := func(fl *fline) int {
		i := sort.Search(len(list), func(i int) bool { return list[i].no >= fl.no })
		if i < len(list) && list[i] == fl {
			return i
		}
		return -1
	}
	i0, i1 := at(lo), at(hi)
	if i0 < 0 || i1 < 0 || hi.path != lo.path || list[i1].no-list[i0].no != i1-i0 {
		return "", false
	}
	lead, trail := 0, 0
	for lead < 3 && i0-lead-1 >= 0 && list[i0-lead-1].no == lo.no-lead-1 {
		lead++
	}
	for trail < 3 && i1+trail+1 < len(list) && list[i1+trail+1].no == hi.no+trail+1 {
		trail++
	}
	if lead > 0 && trail > 0 {
		lead, trail = min(lead, trail), min(lead, trail)
	}
	// Each run of changed lines is written as its removed lines, then
	// their replacements.
	var body strings.Builder
	var minus, plus []string
	oldN, newN := 0, 0
	flush := func() {
		for _, l := range minus {
			body.WriteString("-" + l + "\n")
		}
		for _, l := range plus {
			body.WriteString("+" + l + "\n")
		}
		oldN += len(minus)
		newN += len(plus)
		minus, plus = nil, nil
	}
	for i := i0 - lead; i <= i1+trail; i++ {
		fl := list[i]
		ch, ok := byLine[fl]
		if !ok || ch.same || !ch.del && ch.text == fl.text {
			flush()
			body.WriteString(" " + fl.text + "\n")
			oldN++
			newN++
			continue
		}
		minus = append(minus, fl.text)
		if !ch.del {
			plus = append(plus, ch.text)
		}
	}
	flush()
	start := lo.no - lead
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\nSubject: [MUTANT] %s\n\n", mutantAuthor, m.ID)
	fmt.Fprintf(&b, "%s at %s:%d (patch %s):\n", m.Operator, m.File, m.Line, m.Patch)
	for _, l := range strings.Split(m.Original, "\n") {
		b.WriteString("- " + l + "\n")
	}
	if m.Mutated == "" {
		b.WriteString("+ (deleted)\n")
	} else {
		for _, l := range strings.Split(m.Mutated, "\n") {
			b.WriteString("+ " + l + "\n")
		}
	}
	path := lo.path
	fmt.Fprintf(&b, "---\ndiff --git a/%s b/%s\n--- a/%s\n+++ b/%s\n", path, path, path, path)
	fmt.Fprintf(&b, "@@ -%d,%d +%d,%d @@\n", start, oldN, start, newN)
	b.WriteString(body.String())
	return b.String(), true
}

// findCallbacks returns the names passed as an argument to a call whose
// name contains "for_each", in any hunk of the series (added or context
// lines, any file).
func findCallbacks(units []*unit) map[string]bool {
	out := map[string]bool{}
	for _, u := range units {
		for i, t := range u.toks {
			if t.kind != tIdent || !strings.Contains(t.text, "for_each") || i+1 >= len(u.toks) || u.toks[i+1].text != "(" {
				continue
			}
			c := u.match(i + 1)
			if c < 0 {
				continue
			}
			for _, a := range u.args(i+1, c) {
				if a[1] == a[0]+1 && u.toks[a[0]].kind == tIdent {
					out[u.toks[a[0]].text] = true
				}
			}
		}
	}
	return out
}
