package mutate

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"fusevm/internal/lazyre"
)

// fileDiff is one file's part of a patch.
type fileDiff struct {
	oldPath, newPath string // "" for /dev/null
	hunks            []*hunk
}

// hunk is one "@@" hunk of a fileDiff.
type hunk struct {
	oldStart, oldCount int
	newStart, newCount int
	funcCtx            string // the text after the second "@@"
	lines              []hunkLine
}

// hunkLine is one line of a hunk: kind is ' ', '-' or '+'.
type hunkLine struct {
	kind byte
	text string
}

var hunkHeaderRe = lazyre.New(`^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@ ?(.*)$`)

// parseDiff reads the file diffs of a patch text. Hunks are read by their
// line counts, so a mail signature ("-- ") after the last one is not taken
// for a removed line.
func parseDiff(data string) ([]*fileDiff, error) {
	lines := strings.Split(data, "\n")
	var out []*fileDiff
	var cur *fileDiff
	path := func(s, prefix string) string {
		s = strings.TrimSpace(s)
		if i := strings.IndexByte(s, '\t'); i >= 0 {
			s = s[:i]
		}
		if s == "/dev/null" {
			return ""
		}
		return strings.TrimPrefix(s, prefix)
	}
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		switch {
		case strings.HasPrefix(l, "diff --git "):
			cur = &fileDiff{}
			if m := diffGitLineRe().FindStringSubmatch(l); m != nil {
				cur.oldPath, cur.newPath = m[1], m[2]
			}
			out = append(out, cur)
		case strings.HasPrefix(l, "--- ") && i+1 < len(lines) && strings.HasPrefix(lines[i+1], "+++ "):
			if cur == nil || len(cur.hunks) > 0 {
				cur = &fileDiff{}
				out = append(out, cur)
			}
			cur.oldPath = path(l[4:], "a/")
			cur.newPath = path(lines[i+1][4:], "b/")
			i++
		case strings.HasPrefix(l, "@@ -") && cur != nil:
			m := hunkHeaderRe().FindStringSubmatch(l)
			if m == nil {
				return nil, fmt.Errorf("bad hunk header %q", l)
			}
			h := &hunk{funcCtx: m[5]}
			h.oldStart, _ = strconv.Atoi(m[1])
			h.oldCount = 1
			if m[2] != "" {
				h.oldCount, _ = strconv.Atoi(m[2])
			}
			h.newStart, _ = strconv.Atoi(m[3])
			h.newCount = 1
			if m[4] != "" {
				h.newCount, _ = strconv.Atoi(m[4])
			}
			oldLeft, newLeft := h.oldCount, h.newCount
			for (oldLeft > 0 || newLeft > 0) && i+1 < len(lines) {
				i++
				hl := lines[i]
				if strings.HasPrefix(hl, `\`) { // "\ No newline at end of file"
					continue
				}
				kind := byte(' ')
				text := ""
				if hl != "" {
					kind, text = hl[0], hl[1:]
				}
				switch kind {
				case ' ':
					oldLeft--
					newLeft--
				case '-':
					oldLeft--
				case '+':
					newLeft--
				default:
					return nil, fmt.Errorf("hunk %q of %s: unexpected line %q", l, cur.newPath, hl)
				}
				h.lines = append(h.lines, hunkLine{kind, text})
			}
			if oldLeft != 0 || newLeft != 0 {
				return nil, fmt.Errorf("hunk %q of %s is truncated", l, cur.newPath)
			}
			cur.hunks = append(cur.hunks, h)
		}
	}
	return out, nil
}

var diffGitLineRe = lazyre.New(`^diff --git a/(\S+) b/(\S+)$`)

// fline is one line of a file that some hunk of the series shows. Its
// identity (the pointer) follows the line through later patches; no is its
// number in the file as the patches applied so far leave it.
type fline struct {
	id   int
	text string
	no   int
	path string
	gone bool // removed by a later patch
}

// model is the sparse view of the files a series touches: for each path,
// the lines its hunks show, sorted by number.
type model struct {
	files  map[string][]*fline
	nextID int
}

func newModel() *model { return &model{files: map[string][]*fline{}} }

// apply applies one file diff to the model and returns, for each hunk, the
// lines of its post-image (context and added lines) in order.
func (m *model) apply(fd *fileDiff) [][]*fline {
	old := m.files[fd.oldPath]
	if fd.oldPath != "" {
		delete(m.files, fd.oldPath)
	}
	if fd.newPath == "" { // deleted file
		for _, l := range old {
			l.gone = true
		}
		return make([][]*fline, len(fd.hunks))
	}
	hunks := append([]*hunk(nil), fd.hunks...)
	sort.SliceStable(hunks, func(i, j int) bool { return hunks[i].oldStart < hunks[j].oldStart })
	// For each hunk, where each old-side line goes: its new number, or 0
	// when the hunk removes it.
	type oldMap struct {
		h     *hunk
		newNo []int
	}
	maps := make([]oldMap, len(hunks))
	for k, h := range hunks {
		om := oldMap{h: h}
		n := h.newStart
		for _, hl := range h.lines {
			switch hl.kind {
			case ' ':
				om.newNo = append(om.newNo, n)
				n++
			case '-':
				om.newNo = append(om.newNo, 0)
			case '+':
				n++
			}
		}
		maps[k] = om
	}
	byNo := map[int]*fline{}
	for _, l := range old {
		delta := 0
		moved := false
		for _, om := range maps {
			h := om.h
			if h.oldCount > 0 && l.no >= h.oldStart && l.no < h.oldStart+h.oldCount {
				if nn := om.newNo[l.no-h.oldStart]; nn > 0 {
					l.no = nn
				} else {
					l.gone = true
				}
				moved = true
				break
			}
			end := h.oldStart + h.oldCount - 1
			if h.oldCount == 0 {
				end = h.oldStart
			}
			if end < l.no {
				delta += h.newCount - h.oldCount
			}
		}
		if l.gone {
			continue
		}
		if !moved {
			l.no += delta
		}
		l.path = fd.newPath
		byNo[l.no] = l
	}
	posts := make([][]*fline, len(fd.hunks))
	for k, h := range fd.hunks {
		n := h.newStart
		for _, hl := range h.lines {
			if hl.kind == '-' {
				continue
			}
			l := byNo[n]
			if l == nil || hl.kind == '+' {
				m.nextID++
				l = &fline{id: m.nextID, text: hl.text, no: n, path: fd.newPath}
				if prev := byNo[n]; prev != nil { // cannot happen in a consistent patch
					prev.gone = true
				}
				byNo[n] = l
			}
			posts[k] = append(posts[k], l)
			n++
		}
	}
	var kept []*fline
	for _, l := range byNo {
		if !l.gone {
			kept = append(kept, l)
		}
	}
	sort.Slice(kept, func(i, j int) bool { return kept[i].no < kept[j].no })
	m.files[fd.newPath] = kept
	return posts
}
