package mutate

import (
	"sort"
	"strconv"
	"strings"

	"fusevm/internal/lazyre"
)

// Operators are the mutation operators, in priority order: when two
// mutants make the same file, the one whose operator comes first is kept.
var Operators = []string{"drop-capable", "drop-lock", "drop-rcu", "drop-get", "drop-put", "callback-stop",
	"return-value", "negate-condition", "swap-eq", "swap-rel", "swap-logic", "delete-statement"}

// operatorFuncs implements each operator on one unit.
var operatorFuncs = map[string]func(u *unit, g *genCtx) []*cand{
	"drop-capable":     dropCapable,
	"drop-lock":        func(u *unit, g *genCtx) []*cand { return dropPairs(u, "drop-lock") },
	"drop-rcu":         func(u *unit, g *genCtx) []*cand { return dropPairs(u, "drop-rcu") },
	"drop-get":         dropGet,
	"drop-put":         dropPut,
	"callback-stop":    callbackStop,
	"return-value":     returnValue,
	"negate-condition": negateCondition,
	"swap-eq":          swapper("swap-eq", map[string]string{"==": "!=", "!=": "=="}),
	"swap-rel":         swapper("swap-rel", map[string]string{"<": "<=", "<=": "<", ">": ">=", ">=": ">"}),
	"swap-logic":       swapper("swap-logic", map[string]string{"&&": "||", "||": "&&"}),
	"delete-statement": deleteStatement,
}

// genCtx is what the operators know of the whole series.
type genCtx struct {
	// callbacks are the functions passed to a *for_each* call.
	callbacks map[string]bool
}

// edit replaces columns from..to of a unit line by repl.
type edit struct {
	line, from, to int
	repl           string
}

// change is one line of a mutant: its new text, or deleted; same marks a
// line shown with the change but left as it is.
type change struct {
	line int
	text string
	del  bool
	same bool
}

// cand is a mutant before dedupe and naming.
type cand struct {
	op      string
	u       *unit
	changes []change // by line
	seq     int
}

// codeLine reports whether unit line i may be mutated: an added line of
// code inside a function.
func (u *unit) codeLine(i int) bool {
	l := u.lines[i]
	return l.added && !l.pre && l.inFunc
}

// edited makes a candidate from in-line edits. With span, the lines
// between the first and last edited one are shown too.
func (u *unit) edited(op string, span bool, edits ...edit) *cand {
	if len(edits) == 0 {
		return nil
	}
	byLine := map[int][]edit{}
	lo, hi := edits[0].line, edits[0].line
	for _, e := range edits {
		if !u.codeLine(e.line) {
			return nil
		}
		byLine[e.line] = append(byLine[e.line], e)
		lo, hi = min(lo, e.line), max(hi, e.line)
	}
	c := &cand{op: op, u: u}
	for i := lo; i <= hi; i++ {
		es, ok := byLine[i]
		switch {
		case ok:
			sort.Slice(es, func(a, b int) bool { return es[a].from < es[b].from })
			c.changes = append(c.changes, change{line: i, text: rebuild(u.lines[i], es)})
		case span:
			c.changes = append(c.changes, change{line: i, text: u.lines[i].text, same: true})
		}
	}
	return c
}

// rebuild applies edits to a line and drops the comments that lie wholly
// inside it (a comment that goes on to another line stays).
func rebuild(l uline, edits []edit) string {
	n := len(l.text)
	drop := make([]bool, n)
	for i := 0; i < n; {
		if l.kinds[i] != kComment {
			i++
			continue
		}
		j := i
		for j < n && l.kinds[j] == kComment {
			j++
		}
		if !(i == 0 && l.startsIn) && !(j == n && l.endsIn) {
			for k := i; k < j; k++ {
				drop[k] = true
			}
		}
		i = j
	}
	var b strings.Builder
	ei := 0
	blank := func(c byte) bool { return c == ' ' || c == '\t' }
	for i := 0; i < n; {
		if ei < len(edits) && edits[ei].from == i {
			b.WriteString(edits[ei].repl)
			i = edits[ei].to
			ei++
			continue
		}
		if drop[i] {
			j := i
			for j < n && drop[j] {
				j++
			}
			if s := b.String(); s != "" && blank(s[len(s)-1]) && j < n && blank(l.text[j]) {
				j++
			}
			i = j
			continue
		}
		b.WriteByte(l.text[i])
		i++
	}
	for ; ei < len(edits); ei++ {
		if edits[ei].from >= n {
			b.WriteString(edits[ei].repl)
		}
	}
	return strings.TrimRight(b.String(), " \t")
}

// removal makes a candidate that removes whole statements: their lines are
// deleted, or a brace-less body becomes ';'.
func (u *unit) removal(op string, ss ...stmt) *cand {
	c := &cand{op: op, u: u}
	for _, s := range ss {
		if !u.exclusive(s) {
			return nil
		}
		fl, ll := u.toks[s.first].line, u.toks[s.last].line
		for i := fl; i <= ll; i++ {
			if s.body && i == fl {
				text := u.lines[i].text
				indent := text[:len(text)-len(strings.TrimLeft(text, " \t"))]
				c.changes = append(c.changes, change{line: i, text: indent + ";"})
				continue
			}
			c.changes = append(c.changes, change{line: i, del: true})
		}
	}
	sort.Slice(c.changes, func(a, b int) bool { return c.changes[a].line < c.changes[b].line })
	return c
}

// stmtAdded reports whether a statement lies on added code lines only.
func (u *unit) stmtAdded(s stmt) bool {
	fl, ll := u.toks[s.first].line, u.toks[s.last].line
	for i := fl; i <= ll; i++ {
		if !u.codeLine(i) {
			return false
		}
	}
	return true
}

// call returns the index of the ')' of the call whose name is toks[i], or
// -1 when toks[i] is no call: a member, or a name on a function header.
func (u *unit) call(i int) int {
	t := u.toks[i]
	if t.kind != tIdent || i+1 >= len(u.toks) || u.toks[i+1].text != "(" {
		return -1
	}
	if i > 0 && (u.toks[i-1].text == "." || u.toks[i-1].text == "->") {
		return -1
	}
	if funcName(u.lines[t.line].code) != "" {
		return -1
	}
	return u.match(i + 1)
}

var capableFuncs = map[string]bool{"capable": true, "ns_capable": true, "file_ns_capable": true}

// dropCapable: capable(X), ns_capable(ns, X), file_ns_capable(...) -> true.
func dropCapable(u *unit, _ *genCtx) []*cand {
	var out []*cand
	for i, t := range u.toks {
		if !capableFuncs[t.text] {
			continue
		}
		c := u.call(i)
		if c < 0 || u.toks[c].line != t.line {
			continue
		}
		out = appendCand(out, u.edited("drop-capable", false, edit{t.line, t.col, u.toks[c].col + 1, "true"}))
	}
	return out
}

// lockPairs are the lock and unlock calls drop-lock and drop-rcu remove.
var lockPairs = []struct{ lock, unlock, op string }{
	{"spin_lock", "spin_unlock", "drop-lock"},
	{"spin_lock_irq", "spin_unlock_irq", "drop-lock"},
	{"spin_lock_irqsave", "spin_unlock_irqrestore", "drop-lock"},
	{"spin_lock_bh", "spin_unlock_bh", "drop-lock"},
	{"raw_spin_lock", "raw_spin_unlock", "drop-lock"},
	{"raw_spin_lock_irq", "raw_spin_unlock_irq", "drop-lock"},
	{"raw_spin_lock_irqsave", "raw_spin_unlock_irqrestore", "drop-lock"},
	{"mutex_lock", "mutex_unlock", "drop-lock"},
	{"read_lock", "read_unlock", "drop-lock"},
	{"read_lock_irq", "read_unlock_irq", "drop-lock"},
	{"read_lock_irqsave", "read_unlock_irqrestore", "drop-lock"},
	{"read_lock_bh", "read_unlock_bh", "drop-lock"},
	{"write_lock", "write_unlock", "drop-lock"},
	{"write_lock_irq", "write_unlock_irq", "drop-lock"},
	{"write_lock_irqsave", "write_unlock_irqrestore", "drop-lock"},
	{"write_lock_bh", "write_unlock_bh", "drop-lock"},
	{"rcu_read_lock", "rcu_read_unlock", "drop-rcu"},
}

// dropPairs removes a lock and its unlocks (same call family, same first
// argument, same function, up to the next such lock), all within one hunk.
// At least one of them, or a code line between them, must be added by the
// patch: the series either takes the lock itself or puts its code inside
// a critical section it relies on.
func dropPairs(u *unit, op string) []*cand {
	var out []*cand
	key := func(s stmt) (name, arg string) {
		name, ok := u.callOnly(s)
		if !ok {
			return "", ""
		}
		if as := u.args(s.first+1, s.last-1); len(as) > 0 {
			arg = u.normArg(as[0][0], as[0][1])
		}
		return name, arg
	}
	for k, s := range u.stmts {
		name, arg := key(s)
		unlock := ""
		for _, p := range lockPairs {
			if p.op == op && p.lock == name {
				unlock = p.unlock
			}
		}
		l0 := u.toks[s.first].line
		if unlock == "" || !u.lines[l0].inFunc {
			continue
		}
		fnID := u.lines[l0].fnID
		var unlocks []stmt
		for _, s2 := range u.stmts[k+1:] {
			if u.lines[u.toks[s2.first].line].fnID != fnID {
				break
			}
			n2, a2 := key(s2)
			if n2 == name && a2 == arg {
				break
			}
			if n2 == unlock && a2 == arg {
				unlocks = append(unlocks, s2)
			}
		}
		if len(unlocks) == 0 {
			continue
		}
		last := u.toks[unlocks[len(unlocks)-1].last].line
		added := false
		for i := l0; i <= last; i++ {
			l := u.lines[i]
			added = added || l.added && !l.pre && strings.TrimSpace(l.code) != ""
		}
		if !added {
			continue
		}
		out = appendCand(out, u.removal(op, append([]stmt{s}, unlocks...)...))
	}
	return out
}

// isGet reports whether a call takes a reference: NAME_get or get_file.
func isGet(name string) bool { return strings.HasSuffix(name, "_get") || name == "get_file" }

// dropGet: x = NAME_get(ARG) -> x = ARG; a statement that is only such a
// call is removed.
func dropGet(u *unit, _ *genCtx) []*cand {
	var out []*cand
	whole := map[int]stmt{}
	for _, s := range u.stmts {
		if _, ok := u.callOnly(s); ok {
			whole[s.first] = s
		}
	}
	for i, t := range u.toks {
		if !isGet(t.text) || !u.codeLine(t.line) {
			continue
		}
		c := u.call(i)
		if c < 0 {
			continue
		}
		if s, ok := whole[i]; ok {
			if u.stmtAdded(s) {
				out = appendCand(out, u.removal("drop-get", s))
			}
			continue
		}
		as := u.args(i+1, c)
		if len(as) != 1 || as[0][0] == as[0][1] || u.toks[c].line != t.line {
			continue
		}
		arg := u.src(as[0][0], as[0][1]-1)
		out = appendCand(out, u.edited("drop-get", false, edit{t.line, t.col, u.toks[c].col + 1, arg}))
	}
	return out
}

// dropPut: a statement that is only NAME_put(...) or fput(...) is removed.
func dropPut(u *unit, _ *genCtx) []*cand {
	var out []*cand
	for _, s := range u.stmts {
		name, ok := u.callOnly(s)
		if !ok || !(strings.HasSuffix(name, "_put") || name == "fput") || !u.stmtAdded(s) {
			continue
		}
		out = appendCand(out, u.removal("drop-put", s))
	}
	return out
}

var errnoRe = lazyre.New(`^E[A-Z0-9]+$`)

// retValue is the constant a return statement returns.
type retValue struct {
	kind     string // "zero", "errno", "const"
	errno    string
	from, to int // value tokens
}

// returns lists the one-line "return CONST;" statements on added lines.
func (u *unit) returns() []retValue {
	var out []retValue
	for _, s := range u.stmts {
		if u.toks[s.first].text != "return" || !u.stmtAdded(s) || u.toks[s.first].line != u.toks[s.last].line {
			continue
		}
		v := u.toks[s.first+1 : s.last]
		r := retValue{from: s.first + 1, to: s.last - 1}
		switch {
		case len(v) == 1 && v[0].kind == tNumber:
			r.kind = "const"
			if isZero(v[0].text) {
				r.kind = "zero"
			}
		case len(v) == 2 && v[0].text == "-" && v[1].kind == tIdent && errnoRe().MatchString(v[1].text):
			r.kind, r.errno = "errno", v[1].text
		case len(v) == 2 && v[0].text == "-" && v[1].kind == tNumber && !isZero(v[1].text):
			r.kind = "const"
		default:
			continue
		}
		out = append(out, r)
	}
	return out
}

func isZero(num string) bool {
	n, err := strconv.ParseUint(strings.TrimRight(num, "uUlL"), 0, 64)
	return err == nil && n == 0
}

// replaceValue makes a candidate returning repl instead of r's value.
func (u *unit) replaceValue(op string, r retValue, repl string) *cand {
	a, b := u.toks[r.from], u.toks[r.to]
	return u.edited(op, false, edit{a.line, a.col, b.col + len(b.text), repl})
}

func (u *unit) inCallback(g *genCtx, line int) bool {
	return g.callbacks[u.lines[line].fn]
}

// callbackStop: in an iterator callback, return 0 -> 1 (stop the walk) and
// a nonzero constant -> 0 (go on).
func callbackStop(u *unit, g *genCtx) []*cand {
	var out []*cand
	for _, r := range u.returns() {
		if !u.inCallback(g, u.toks[r.from].line) {
			continue
		}
		repl := "0"
		if r.kind == "zero" {
			repl = "1"
		}
		out = appendCand(out, u.replaceValue("callback-stop", r, repl))
	}
	return out
}

// returnValue: return 0 -> -EINVAL; return -EXXX -> 0 and -EINVAL (-EPERM
// for -EINVAL); return N -> 0. A callback's return 0 is left to
// callback-stop.
func returnValue(u *unit, g *genCtx) []*cand {
	var out []*cand
	for _, r := range u.returns() {
		var repls []string
		switch r.kind {
		case "zero":
			if !u.inCallback(g, u.toks[r.from].line) {
				repls = []string{"-EINVAL"}
			}
		case "errno":
			other := "-EINVAL"
			if r.errno == "EINVAL" {
				other = "-EPERM"
			}
			repls = []string{"0", other}
		case "const":
			repls = []string{"0"}
		}
		for _, repl := range repls {
			out = appendCand(out, u.replaceValue("return-value", r, repl))
		}
	}
	return out
}

// negateCondition: if (C) / while (C) -> if (!(C)).
func negateCondition(u *unit, _ *genCtx) []*cand {
	var out []*cand
	for _, c := range u.conds {
		open, close := u.toks[c.open], u.toks[c.close]
		if !u.allAdded(u.toks[c.kw].line, close.line) {
			continue
		}
		out = appendCand(out, u.edited("negate-condition", true,
			edit{open.line, open.col + 1, open.col + 1, "!("},
			edit{close.line, close.col, close.col, ")"}))
	}
	return out
}

// swapper makes an operator that replaces each occurrence of a token.
func swapper(op string, swaps map[string]string) func(*unit, *genCtx) []*cand {
	return func(u *unit, _ *genCtx) []*cand {
		var out []*cand
		for _, t := range u.toks {
			repl, ok := swaps[t.text]
			if !ok || t.kind != tPunct {
				continue
			}
			out = appendCand(out, u.edited(op, false, edit{t.line, t.col, t.col + len(t.text), repl}))
		}
		return out
	}
}

// deleteStatement removes a simple statement that is no declaration,
// return, break, continue or goto.
func deleteStatement(u *unit, _ *genCtx) []*cand {
	var out []*cand
	for _, s := range u.stmts {
		if s.first == s.last || u.isDecl(s) || !u.stmtAdded(s) {
			continue
		}
		switch u.toks[s.first].text {
		case "return", "break", "continue", "goto":
			continue
		}
		out = appendCand(out, u.removal("delete-statement", s))
	}
	return out
}

func appendCand(out []*cand, c *cand) []*cand {
	if c == nil {
		return out
	}
	return append(out, c)
}
