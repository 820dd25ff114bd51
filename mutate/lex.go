package mutate

import (
	"sort"
	"strings"

	"fusevm/internal/lazyre"
)

// Byte kinds of a line, from maskLine.
const (
	kCode    = 'c'
	kComment = 'm'
	kString  = 's' // inside a string or character literal (not the quotes)
)

// maskLine returns the code of a line with comments and the insides of
// string and character literals blanked (same length, so columns stay),
// the kind of each byte, and whether the line ends inside a /* comment.
func maskLine(text string, inComment bool) (code, kinds []byte, endsIn, strayClose bool) {
	code = []byte(text)
	kinds = make([]byte, len(text))
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case inComment:
			kinds[i] = kComment
			code[i] = ' '
			if c == '*' && i+1 < len(text) && text[i+1] == '/' {
				kinds[i+1] = kComment
				code[i+1] = ' '
				i++
				inComment = false
			}
		case c == '/' && i+1 < len(text) && text[i+1] == '*':
			kinds[i], kinds[i+1] = kComment, kComment
			code[i], code[i+1] = ' ', ' '
			i++
			inComment = true
		case c == '/' && i+1 < len(text) && text[i+1] == '/':
			for j := i; j < len(text); j++ {
				kinds[j] = kComment
				code[j] = ' '
			}
			i = len(text)
		case c == '*' && i+1 < len(text) && text[i+1] == '/':
			strayClose = true
			kinds[i] = kCode
		case c == '"' || c == '\'':
			kinds[i] = kCode
			j := i + 1
			for ; j < len(text) && text[j] != c; j++ {
				kinds[j] = kString
				code[j] = ' '
				if text[j] == '\\' && j+1 < len(text) {
					j++
					kinds[j] = kString
					code[j] = ' '
				}
			}
			if j < len(text) {
				kinds[j] = kCode
			}
			i = j
		default:
			kinds[i] = kCode
		}
	}
	return code, kinds, inComment, strayClose
}

// token is one C token of a unit's code stream.
type token struct {
	text      string
	off, end  int // in the stream
	line, col int // line index in the unit, column in that line
	kind      byte
}

// Token kinds.
const (
	tIdent  = 'i'
	tNumber = 'n'
	tPunct  = 'p'
	tString = 's'
)

var puncts = []string{">>=", "<<=", "...", "->", "++", "--", "<<", ">>", "<=", ">=", "==", "!=", "&&", "||",
	"+=", "-=", "*=", "/=", "%=", "&=", "^=", "|=", "##"}

func isIdentByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// tokenize splits a masked code stream into tokens. starts holds the
// offset of each line in the stream.
func tokenize(s string, starts []int) []token {
	var out []token
	for i := 0; i < len(s); {
		c := s[i]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' {
			i++
			continue
		}
		j := i + 1
		kind := byte(tPunct)
		switch {
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			kind = tIdent
			for j < len(s) && isIdentByte(s[j]) {
				j++
			}
		case c >= '0' && c <= '9':
			kind = tNumber
			for j < len(s) && (isIdentByte(s[j]) || s[j] == '.') {
				j++
			}
		case c == '"' || c == '\'':
			kind = tString
			for j < len(s) && s[j] != c && s[j] != '\n' {
				j++
			}
			if j < len(s) && s[j] == c {
				j++
			}
		default:
			for _, p := range puncts {
				if strings.HasPrefix(s[i:], p) {
					j = i + len(p)
					break
				}
			}
		}
		line := sort.SearchInts(starts, i+1) - 1
		out = append(out, token{text: s[i:j], off: i, end: j, line: line, col: i - starts[line], kind: kind})
		i = j
	}
	return out
}

// uline is one post-image line of a hunk.
type uline struct {
	text     string
	added    bool
	no       int // line number as the hunk's patch leaves the file
	fl       *fline
	code     string // masked
	kinds    []byte
	startsIn bool // starts inside a /* comment
	endsIn   bool // ends inside a /* comment
	pre      bool // preprocessor line
	inFunc   bool // inside a function body or header
	fn       string
	fnID     int
}

// unit is one hunk of one patch, ready for the operators.
type unit struct {
	patchIdx  int
	patchName string
	file      string
	lines     []uline
	stream    string
	starts    []int
	toks      []token
	stmts     []stmt
	conds     []cond
}

var funcHeaderRe = lazyre.New(`^(?:[A-Za-z_]\w*[\s*]+)+\**([A-Za-z_]\w*)\s*\(`)

// funcName returns the function a column-0 header line opens, or "".
func funcName(code string) string {
	if code == "" || !(code[0] == '_' || code[0] >= 'a' && code[0] <= 'z' || code[0] >= 'A' && code[0] <= 'Z') {
		return ""
	}
	if t := strings.TrimSpace(code); strings.HasSuffix(t, ";") {
		return ""
	}
	m := funcHeaderRe().FindStringSubmatch(code)
	if m == nil || cKeywords[m[1]] {
		return ""
	}
	return m[1]
}

var labelRe = lazyre.New(`^[A-Za-z_]\w*\s*:([^:]|$)`)

var cKeywords = map[string]bool{"if": true, "while": true, "for": true, "switch": true, "return": true,
	"sizeof": true, "do": true, "else": true, "case": true, "goto": true, "typeof": true}

// newUnit analyses one hunk's post-image.
func newUnit(patchIdx int, patchName, file string, h *hunk, post []*fline, fnSeq *int) *unit {
	u := &unit{patchIdx: patchIdx, patchName: patchName, file: file}
	n := h.newStart
	for _, hl := range h.lines {
		if hl.kind == '-' {
			continue
		}
		u.lines = append(u.lines, uline{text: hl.text, added: hl.kind == '+', no: n})
		n++
	}
	for i := range u.lines {
		if i < len(post) {
			u.lines[i].fl = post[i]
		}
	}
	// Mask comments; a hunk that starts inside a comment shows a "*/"
	// before any "/*".
	mask := func(in bool) bool {
		stray, seen := false, false
		for i := range u.lines {
			l := &u.lines[i]
			l.startsIn = in
			code, kinds, out, s := maskLine(l.text, in)
			if s && !seen {
				stray = true
			}
			seen = seen || strings.IndexByte(string(kinds), kComment) >= 0
			l.code, l.kinds, l.endsIn = string(code), kinds, out
			in = out
		}
		return stray
	}
	if mask(false) {
		mask(true)
	}
	// Preprocessor lines (and their continuations) are no code.
	cont := false
	for i := range u.lines {
		l := &u.lines[i]
		if cont || strings.HasPrefix(strings.TrimSpace(l.code), "#") {
			cont = strings.HasSuffix(strings.TrimRight(l.text, " \t"), `\`)
			l.pre = true
			l.code = strings.Repeat(" ", len(l.code))
		}
	}
	// Functions. Kernel style indents code inside a function; at column 0
	// there are only function headers, their braces, labels and
	// file-scope things. The hunk header names the function the hunk
	// starts in, if it can; a hunk is taken to start inside one unless
	// its first column-0 line says otherwise.
	fn, in := funcName(h.funcCtx), true
	*fnSeq++
	id := *fnSeq
	leave := func() {
		fn, in = "", false
		*fnSeq++
		id = *fnSeq
	}
	for i := range u.lines {
		l := &u.lines[i]
		closes := false
		if c := l.code; !l.pre && strings.TrimSpace(c) != "" && c[0] != ' ' && c[0] != '\t' {
			name := funcName(c)
			switch {
			case name != "":
				fn, in = name, true
				*fnSeq++
				id = *fnSeq
			case c[0] == '{':
				in = true
			case c[0] == '}':
				closes = true
			case labelRe().MatchString(c):
			default:
				leave()
			}
		}
		l.fn, l.fnID, l.inFunc = fn, id, in
		if closes {
			leave()
		}
	}
	var b strings.Builder
	for i, l := range u.lines {
		u.starts = append(u.starts, b.Len())
		b.WriteString(l.code)
		if i+1 < len(u.lines) {
			b.WriteByte('\n')
		}
	}
	u.stream = b.String()
	u.toks = tokenize(u.stream, u.starts)
	u.parse()
	return u
}
