package mutate

import "strings"

// stmt is a simple statement: tokens first..last, last being its ';'.
type stmt struct {
	first, last int
	// body is set for the brace-less body of an if, else, while, for or
	// do: removing it must leave a ';' in its place.
	body bool
}

// cond is the parenthesised condition of an if or while: kw is the
// keyword's token, open and close its parentheses.
type cond struct {
	kw, open, close int
}

// match returns the index of the token closing the bracket at toks[i], or
// -1.
func (u *unit) match(i int) int {
	open := u.toks[i].text
	closer := map[string]string{"(": ")", "[": "]", "{": "}"}[open]
	depth := 0
	for j := i; j < len(u.toks); j++ {
		switch u.toks[j].text {
		case open:
			depth++
		case closer:
			depth--
			if depth == 0 {
				return j
			}
		}
	}
	return -1
}

// parse finds the simple statements and the conditions of the unit.
func (u *unit) parse() {
	toks := u.toks
	n := len(toks)
	body := false
	text := func(i int) string {
		if i < n {
			return toks[i].text
		}
		return ""
	}
	for i := 0; i < n; {
		t := toks[i]
		switch {
		case t.text == "{" || t.text == "}" || t.text == ";":
			body = false
			i++
		case t.kind == tIdent && (t.text == "if" || t.text == "while" || t.text == "for" || t.text == "switch" ||
			u.loopMacro(i)) && text(i+1) == "(":
			c := u.match(i + 1)
			if c < 0 {
				return
			}
			if t.text == "if" || t.text == "while" {
				u.conds = append(u.conds, cond{kw: i, open: i + 1, close: c})
			}
			body = t.text != "switch"
			i = c + 1
		case t.text == "else" || t.text == "do":
			body = true
			i++
		case t.text == "case" || t.text == "default":
			for i < n && toks[i].text != ":" {
				i++
			}
			i++
			body = false
		case t.kind == tIdent && text(i+1) == ":":
			i += 2 // a label
			body = false
		default:
			depth := 0
			j := i
		scan:
			for ; j < n; j++ {
				switch toks[j].text {
				case "(", "[":
					depth++
				case ")", "]":
					depth--
				case "{", "}":
					if depth <= 0 {
						break scan
					}
				case ";":
					if depth <= 0 {
						u.stmts = append(u.stmts, stmt{first: i, last: j, body: body})
						j++
						break scan
					}
				}
			}
			body = false
			if j == i {
				j++
			}
			i = j
		}
	}
}

// loopMacro reports whether toks[i] starts a loop macro such as
// list_for_each_entry(pos, head, member) { ... }: a *for_each* name whose
// call is not followed by ';' (idr_for_each(...); is a plain call).
func (u *unit) loopMacro(i int) bool {
	if !strings.Contains(u.toks[i].text, "for_each") || i+1 >= len(u.toks) || u.toks[i+1].text != "(" {
		return false
	}
	c := u.match(i + 1)
	return c >= 0 && (c+1 >= len(u.toks) || u.toks[c+1].text != ";")
}

// exclusive reports whether the statement alone fills its lines, all of
// them added code lines.
func (u *unit) exclusive(s stmt) bool {
	f, l := u.toks[s.first], u.toks[s.last]
	if strings.TrimSpace(u.lines[f.line].code[:f.col]) != "" ||
		strings.TrimSpace(u.lines[l.line].code[l.col+1:]) != "" {
		return false
	}
	for i := f.line; i <= l.line; i++ {
		if u.lines[i].pre || u.lines[i].startsIn || u.lines[i].endsIn {
			return false
		}
	}
	return true
}

// allAdded reports whether the lines from..to are all added lines.
func (u *unit) allAdded(from, to int) bool {
	for i := from; i <= to; i++ {
		if !u.lines[i].added {
			return false
		}
	}
	return true
}

// declTypes are the words that start a declaration.
var declTypes = map[string]bool{"void": true, "char": true, "short": true, "int": true, "long": true,
	"float": true, "double": true, "signed": true, "unsigned": true, "_Bool": true, "bool": true,
	"const": true, "volatile": true, "static": true, "extern": true, "register": true, "auto": true,
	"inline": true, "typedef": true, "struct": true, "union": true, "enum": true, "__auto_type": true}

// isDecl reports whether the statement declares something: it starts with
// a type or qualifier word, two identifiers in a row ("size_t n"), "TYPE
// *name" or a DEFINE_/DECLARE_ macro.
func (u *unit) isDecl(s stmt) bool {
	t := u.toks[s.first:s.last]
	if len(t) == 0 {
		return false
	}
	if t[0].kind != tIdent {
		return false
	}
	if declTypes[t[0].text] || strings.HasPrefix(t[0].text, "DEFINE_") || strings.HasPrefix(t[0].text, "DECLARE_") || t[0].text == "LIST_HEAD" {
		return true
	}
	if len(t) > 1 && t[1].kind == tIdent {
		return true
	}
	k := 1
	for k < len(t) && t[k].text == "*" {
		k++
	}
	if k > 1 && k < len(t) && t[k].kind == tIdent {
		next := ";"
		if k+1 < len(t) {
			next = t[k+1].text
		}
		switch next {
		case "=", ";", ",", "[", ")":
			return true
		}
	}
	return false
}

// callOnly reports whether the statement is a single call, NAME(...);,
// and returns NAME.
func (u *unit) callOnly(s stmt) (string, bool) {
	if s.last-s.first < 3 || u.toks[s.first].kind != tIdent || u.toks[s.first+1].text != "(" {
		return "", false
	}
	if u.match(s.first+1) != s.last-1 {
		return "", false
	}
	return u.toks[s.first].text, true
}

// args returns the argument token ranges [from, to) of the call whose '('
// is at open and ')' at close.
func (u *unit) args(open, close int) [][2]int {
	var out [][2]int
	if close == open+1 {
		return nil
	}
	depth := 0
	start := open + 1
	for j := open + 1; j < close; j++ {
		switch u.toks[j].text {
		case "(", "[", "{":
			depth++
		case ")", "]", "}":
			depth--
		case ",":
			if depth == 0 {
				out = append(out, [2]int{start, j})
				start = j + 1
			}
		}
	}
	return append(out, [2]int{start, close})
}

// src returns the original text of tokens from..to (inclusive), which
// must be on one line.
func (u *unit) src(from, to int) string {
	a, b := u.toks[from], u.toks[to]
	return u.lines[a.line].text[a.col : b.col+len(b.text)]
}

// normArg is the text of tokens from..to-1 without spaces, for comparing
// lock arguments.
func (u *unit) normArg(from, to int) string {
	var b strings.Builder
	for j := from; j < to; j++ {
		b.WriteString(u.toks[j].text)
	}
	return b.String()
}
