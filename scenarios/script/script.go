// Package script is the scenario language: plain text, one step per line,
// parsed on the host (so a malformed script fails before any boot, with
// file:line and the reason) and executed in the guest by the agent.
//
// A script has header lines ("key: value") followed by steps:
//
//	# comment
//	needs: same_inode_reuse            claims the scenario depends on
//	timeout: 60s                       guest-side limit for the scenario
//
//	backing 16M                        op, then arguments
//	open h1 a.txt => ok                "=> outcome": what the step must give
//	open h2 a.txt => same_inode_reuse ? ok : EIO
//	repeat 50                          blocks end with "end"
//	  ...
//	end
//	if $r ENOMEM                       the block runs when a stored value matches
//	  ...
//	end
//	race 5s                            threads loop their steps concurrently
//	  thread
//	    ...
//	  end
//	end
//
// An outcome is ok, an errno name (EIO, EPERM, ...), alternatives
// (ok|ENOMEM), or any (whatever happens, for steps racing each other). A
// conditional outcome picks by a claim of the kernel under test. Without
// "=>", a step must give ok. Arguments are
// words or double-quoted strings (Go escapes); "$name" refers to a value a
// previous step stored with as=name.
//
// A script may mount several FUSE connections ("mount as=NAME"; a mount
// without as= is the connection "main") and several backing filesystems
// ("backing SIZE as=NAME", whose files are written NAME:PATH). A step may
// only name a connection or a backing filesystem that an earlier line
// declared (see Scope).
//
// This package is a leaf shared by host and guest.
package script

import (
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"fusevm/internal/lazyre"
)

// Script is a parsed scenario.
type Script struct {
	Name    string
	File    string
	Needs   []string
	Timeout time.Duration
	// Description is a one-line summary for reports.
	Description string
	Steps       []*Step
}

// Step is one line of a script, or a block (repeat, race, thread).
type Step struct {
	Line int
	Op   string
	Args []string
	// Expect is the required outcome; nil means ok.
	Expect *Outcome
	// Body holds the steps of a block op.
	Body []*Step
}

// Outcome is what a step must give: Value if there is no Claim; otherwise
// IfClaim when the kernel claims Claim, else Else.
type Outcome struct {
	Claim   string
	IfClaim string
	Else    string
}

// Resolve returns the concrete outcome for a kernel with the given claims.
func (o *Outcome) Resolve(claims map[string]bool) string {
	if o == nil {
		return "ok"
	}
	if o.Claim == "" || claims[o.Claim] {
		return o.IfClaim
	}
	return o.Else
}

// Arg is the validation kind of an operand.
type Arg int

// Operand kinds.
const (
	Word        Arg = iota // any word or string
	Handle                 // a file handle name
	Path                   // a path relative to the FUSE mount's root (the main backing tmpfs)
	BackingPath            // a backing file: a relative path on the main backing tmpfs, or NAME:PATH on the one declared with backing SIZE as=NAME
	Conn                   // the name of a connection declared by an earlier mount
	Size                   // 16M, 4096, 1G
	Count                  // a positive integer
	Duration               // 100ms, 5s
	Value                  // a quoted string or $var
	Flag                   // key=value or a bare flag, zero or more (must be last)
)

// OpSpec describes one op: its operands and whether it opens a block.
type OpSpec struct {
	Args  []Arg
	Block bool
	// Help is a short description for the README and errors.
	Help string
}

// Ops is the language. The guest interpreter implements exactly these.
var Ops = map[string]OpSpec{
	// Setup and daemon life cycle.
	"backing": {Args: []Arg{Size, Flag}, Help: "mount a fresh tmpfs of SIZE for the backing files, the one every FUSE mount serves; as=NAME mounts a further one, served by no daemon, whose files are written NAME:PATH"},
	"file":    {Args: []Arg{BackingPath, Value}, Help: "create a backing file with CONTENT"},
	"fill":    {Args: []Arg{BackingPath, Size}, Help: "create a backing file of SIZE bytes (a repeating pattern)"},
	"mount":   {Args: []Arg{Flag}, Help: "mount a FUSE connection: start its keeper and a first daemon generation; it becomes the current connection (flags: as=NAME names it, main without; recovery=STRATEGY, id-per-open, inode-cache, no-passthrough, no-probe: the daemon registers no probe backing id at start and learns passthrough from the INIT reply alone, so the first id the scenario registers on a fresh connection is 1; recovery=scan-close then cannot scan and reports ENOTSUP; init-fail-nth=N (N or $VAR): the daemon writes the INIT reply with its Nth slab allocation failing, kernel fault injection)"},
	"use":     {Args: []Arg{Conn}, Help: "make connection NAME the current one: the daemon, mount and ioctl steps act on it (handles stay usable whatever the current connection)"},
	"crash":   {Help: "SIGKILL the daemon and wait for it to die"},
	"restart": {Args: []Arg{Flag}, Help: "start a new daemon generation (flags as for mount, without as=) and wait until it serves"},
	"umount":  {Help: "unmount the FUSE mount through the keeper, which then exits (the connection ends with the last /dev/fuse fd)"},
	"abort":   {Help: "abort the connection through fusectl"},
	// File I/O on the FUSE mount.
	"open":       {Args: []Arg{Handle, Path, Flag}, Help: "open PATH on the FUSE mount as HANDLE (flags: rw, create)"},
	"read":       {Args: []Arg{Handle, Value}, Help: "pread len(CONTENT) bytes at 0 and compare"},
	"write":      {Args: []Arg{Handle, Value}, Help: "pwrite CONTENT at 0"},
	"mmap-read":  {Args: []Arg{Handle, Value}, Help: "mmap len(CONTENT) bytes shared and compare"},
	"close":      {Args: []Arg{Handle}, Help: "close HANDLE"},
	"stat":       {Args: []Arg{Path}, Help: "stat PATH on the FUSE mount (a LOOKUP)"},
	"stat-async": {Args: []Arg{Handle, Path}, Help: "start a stat of PATH in the background, named HANDLE"},
	"wait":       {Args: []Arg{Handle}, Help: "wait for a background step; its outcome is the step's"},
	// The daemon, through its control socket.
	"passthrough": {Help: "the connection negotiated FUSE passthrough"},
	"served":      {Args: []Arg{Word, Count}, Help: "the current generation served exactly N requests of OPCODE (e.g. READ)"},
	"recovery":    {Help: "the outcome of the current generation's recovery ioctl"},
	"ids":         {Args: []Arg{Count}, Help: "the current generation holds exactly N backing ids (waits up to 2s: RELEASE is asynchronous)"},
	"answer-open": {Args: []Arg{Path, Value}, Help: "answer the next OPEN of PATH with backing id VALUE"},
	"hold":        {Args: []Arg{Word}, Help: "let the daemon read but not answer requests of OPCODE"},
	"release":     {Args: []Arg{Word}, Help: "answer the held requests of OPCODE and stop holding"},
	// The kernel interface, on a dup of the connection's /dev/fuse fd.
	"ioctl": {Args: []Arg{Word, Flag}, Help: "backing-open PATH [as=VAR] [is=REF] [not=REF] [count=N] | backing-close ID | close-all | close-minus-one; PATH is a backing file (NAME:PATH on a further backing filesystem), REF is $VAR or a number compared with the (last) id; flag nocap drops CAP_SYS_ADMIN for the call; fail-nth=N (N or $VAR) makes the call's Nth slab allocation fail (kernel fault injection; the detail says whether the call got that far); result=VAR stores the outcome (ok or the errno's name)"},
	// The backing filesystems and the connections.
	"free-space":     {Args: []Arg{Flag}, Help: "free bytes of the main backing tmpfs, or with on=NAME of backing filesystem NAME; as=VAR stores them, is=REF compares (REF: $VAR or a number)"},
	"unlink-backing": {Args: []Arg{BackingPath}, Help: "unlink a backing file directly"},
	"link-backing":   {Args: []Arg{BackingPath, BackingPath}, Help: "hard-link backing file OLD as NEW: another name of the same inode (EXDEV across backing filesystems)"},
	"kernel-memory":  {Args: []Arg{Flag}, Help: "the kernel's unreclaimable slab memory (SUnreclaim of /proc/meminfo): as=VAR stores it, at-most=$VAR+SIZE fails when it grew more than SIZE (waits up to 2s: objects freed after an RCU grace period)"},
	"backing-ino":    {Args: []Arg{BackingPath, Flag}, Help: "the inode number of a backing file: as=VAR stores it, is=REF and not=REF compare (REF: $VAR or a number). tmpfs numbers its inodes per filesystem in creation order (Linux 5.9 on: the root 1, the first file 2), so the Nth file created on two fresh backing filesystems has the same number on both"},
	"umount-backing": {Args: []Arg{Flag}, Help: "unmount the main backing tmpfs, or with a NAME operand backing filesystem NAME (EBUSY while a backing file is still referenced)"},
	"connections":    {Args: []Arg{Count}, Help: "exactly N of the FUSE connections this scenario mounted still exist (in fusectl)"},
	// Control flow.
	"sleep": {Args: []Arg{Duration}, Help: "pause"},
	// Kernel debugging.
	"sysrq":  {Args: []Arg{Word}, Help: "write KEY to /proc/sysrq-trigger (c: crash the kernel; needs CONFIG_MAGIC_SYSRQ)"},
	"repeat": {Args: []Arg{Count, Flag}, Block: true, Help: "run the block N times; as=VAR counts the rounds in $VAR (1, 2, ... N)"},
	"if":     {Args: []Arg{Value, Word}, Block: true, Help: "run the block only when VALUE (a $VAR a step stored) equals WORD, e.g. if $r ENOMEM"},
	"race":   {Args: []Arg{Duration}, Block: true, Help: "run the thread blocks concurrently, each in a loop, for DURATION"},
	"thread": {Block: true, Help: "one looping thread of a race"},
}

// Headers are the accepted header keys.
var Headers = map[string]bool{"needs": true, "timeout": true, "description": true}

// Any is the outcome that accepts whatever a step gives (for racing steps
// whose result depends on timing; the scenario then checks for splats).
const Any = "any"

// ErrnoRe matches errno outcome names.
var ErrnoRe = lazyre.New(`^E[A-Z0-9]+$`)

// MainConn is the name of the connection a mount without as=NAME mounts.
const MainConn = "main"

var (
	nameRe  = lazyre.New(`^[a-z][a-z0-9_]*$`) // handles, connections, backing filesystems
	claimRe = lazyre.New(`^[a-z][a-z0-9_]*$`)
	sizeRe  = lazyre.New(`^[0-9]+[KMG]?$`)
	refRe   = lazyre.New(`^(\$.+|[0-9]+)$`)
	// countRefRe is a positive number or $VAR.
	countRefRe = lazyre.New(`^(\$[a-z][a-z0-9_]*|[1-9][0-9]*)$`)
	// growthRe is kernel-memory's at-most=$VAR+SIZE.
	growthRe = lazyre.New(`^\$[a-z][a-z0-9_]*\+[0-9]+[KMG]?$`)
)

// Error is a parse error at file:line.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// Parse parses a script; name is the scenario name, file is used in errors.
func Parse(name, file, text string) (*Script, error) { return NewScope().Parse(name, file, text) }

// Scope holds the names a script has declared: its FUSE connections
// ("mount as=NAME", MainConn for a mount without as=) and its further
// backing filesystems ("backing SIZE as=NAME"). A step may only name what
// an earlier line declared.
type Scope struct {
	conns, backings map[string]bool
}

// NewScope returns a scope in which nothing is declared yet.
func NewScope() *Scope { return &Scope{conns: map[string]bool{}, backings: map[string]bool{}} }

// Parse parses a script as the continuation of the lines sc holds the
// declarations of (the guest shell parses a session's steps one at a
// time); on success, sc also holds what the script declares.
func (sc *Scope) Parse(name, file, text string) (*Script, error) {
	scope := &Scope{conns: maps.Clone(sc.conns), backings: maps.Clone(sc.backings)}
	s := &Script{Name: name, File: file, Timeout: 60 * time.Second}
	type frame struct {
		step *Step
		body *[]*Step
	}
	stack := []frame{{body: &s.Steps}}
	inHeader := true
	for i, raw := range strings.Split(text, "\n") {
		ln := i + 1
		fail := func(format string, a ...any) error {
			return &Error{File: file, Line: ln, Msg: fmt.Sprintf(format, a...)}
		}
		line := stripComment(raw)
		if line == "" {
			continue
		}
		if inHeader {
			if k, v, ok := strings.Cut(line, ":"); ok && !strings.ContainsAny(k, " \t\"") {
				if !Headers[k] {
					return nil, fail("unknown header %q (want needs, timeout or description)", k)
				}
				v = strings.TrimSpace(v)
				switch k {
				case "needs":
					for _, c := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' }) {
						if !claimRe().MatchString(c) {
							return nil, fail("bad claim name %q", c)
						}
						s.Needs = append(s.Needs, c)
					}
				case "timeout":
					d, err := time.ParseDuration(v)
					if err != nil || d <= 0 {
						return nil, fail("bad timeout %q", v)
					}
					s.Timeout = d
				case "description":
					s.Description = v
				}
				continue
			}
			inHeader = false
		}
		words, expect, err := splitLine(line)
		if err != nil {
			return nil, fail("%v", err)
		}
		op := words[0]
		if op == "end" {
			if len(words) > 1 || expect != "" {
				return nil, fail("end takes nothing")
			}
			if len(stack) == 1 {
				return nil, fail("end without an open block")
			}
			top := stack[len(stack)-1]
			if len(top.step.Body) == 0 {
				return nil, fail("empty %s block (opened at line %d)", top.step.Op, top.step.Line)
			}
			stack = stack[:len(stack)-1]
			continue
		}
		spec, ok := Ops[op]
		if !ok {
			return nil, fail("unknown step %q", op)
		}
		st := &Step{Line: ln, Op: op, Args: words[1:]}
		if err := checkArgs(spec, st.Args); err != nil {
			return nil, fail("%s: %v", op, err)
		}
		if err := scope.check(spec, st); err != nil {
			return nil, fail("%s: %v", op, err)
		}
		if expect != "" {
			if spec.Block {
				return nil, fail("%s is a block and takes no outcome", op)
			}
			if st.Expect, err = parseOutcome(expect); err != nil {
				return nil, fail("%v", err)
			}
		}
		parent := stack[len(stack)-1]
		if op == "thread" && (parent.step == nil || parent.step.Op != "race") {
			return nil, fail("thread outside a race block")
		}
		if parent.step != nil && parent.step.Op == "race" && op != "thread" {
			return nil, fail("a race block holds only thread blocks")
		}
		*parent.body = append(*parent.body, st)
		if spec.Block {
			stack = append(stack, frame{step: st, body: &st.Body})
		}
	}
	if len(stack) > 1 {
		top := stack[len(stack)-1]
		return nil, &Error{File: file, Line: top.step.Line, Msg: fmt.Sprintf("%s block is never closed with end", top.step.Op)}
	}
	if len(s.Steps) == 0 {
		return nil, &Error{File: file, Line: 1, Msg: "script has no steps"}
	}
	*sc = *scope
	return s, nil
}

// check checks the connections and backing filesystems st names against
// those declared before it, and declares those st mounts.
func (sc *Scope) check(spec OpSpec, st *Step) error {
	for i, kind := range spec.Args {
		switch {
		case kind == Flag: // always last: the rest are flags
			return sc.checkFlags(st, st.Args[i:])
		case kind == BackingPath:
			if err := sc.checkBackingPath(st.Args[i]); err != nil {
				return err
			}
		case kind == Conn && !sc.conns[st.Args[i]]:
			return fmt.Errorf("no connection %q is mounted before (mount as=%s, or mount for %s)", st.Args[i], st.Args[i], MainConn)
		}
	}
	return nil
}

// checkFlags checks the flags of the steps whose flags name connections,
// backing filesystems or values to compare with, and declares what a
// mount or backing step names.
func (sc *Scope) checkFlags(st *Step, flags []string) error {
	switch st.Op {
	case "backing", "mount":
		declared := sc.backings
		name := ""
		if st.Op == "mount" {
			declared, name = sc.conns, MainConn
		}
		for _, f := range flags {
			v, ok := strings.CutPrefix(f, "as=")
			switch {
			case ok && !nameRe().MatchString(v):
				return fmt.Errorf("bad name %q (want lower-case letters, digits and _)", v)
			case ok:
				name = v
			case st.Op == "backing":
				return fmt.Errorf("unknown flag %q (want as=NAME)", f)
			}
		}
		if name != "" {
			declared[name] = true
		}
	case "repeat":
		if len(flags) > 1 {
			return errors.New("want at most one flag, as=VAR")
		}
		for _, f := range flags {
			if v, ok := strings.CutPrefix(f, "as="); !ok || !nameRe().MatchString(v) {
				return fmt.Errorf("unknown flag %q (want as=VAR)", f)
			}
		}
	case "restart":
		for _, f := range flags {
			if strings.HasPrefix(f, "as=") {
				return errors.New("restart takes no as=NAME: it restarts the current connection's daemon (use NAME switches)")
			}
		}
	case "free-space":
		for _, f := range flags {
			if v, ok := strings.CutPrefix(f, "on="); ok {
				if err := sc.checkBacking(v); err != nil {
					return err
				}
			}
		}
	case "umount-backing":
		if len(flags) > 1 {
			return errors.New("want at most one backing filesystem name")
		}
		for _, f := range flags {
			if err := sc.checkBacking(f); err != nil {
				return err
			}
		}
	case "kernel-memory":
		if len(flags) != 1 {
			return errors.New("want one flag: as=VAR or at-most=$VAR+SIZE")
		}
		k, v, _ := strings.Cut(flags[0], "=")
		switch {
		case k == "as" && nameRe().MatchString(v):
		case k == "at-most" && growthRe().MatchString(v):
		default:
			return fmt.Errorf("unknown flag %q (want as=VAR or at-most=$VAR+SIZE)", flags[0])
		}
	case "backing-ino", "ioctl":
		for _, f := range flags {
			k, v, ok := strings.Cut(f, "=")
			switch {
			case ok && (k == "is" || k == "not") && !refRe().MatchString(v):
				return fmt.Errorf("%s=%s: want $VAR or a number", k, v)
			case st.Op == "backing-ino" && (!ok || (k != "as" && k != "is" && k != "not")):
				return fmt.Errorf("unknown flag %q (want as=VAR, is=REF, not=REF)", f)
			case st.Op == "ioctl" && k == "fail-nth" && !countRefRe().MatchString(v):
				return fmt.Errorf("fail-nth=%s: want a positive number or $VAR", v)
			case st.Op == "ioctl" && k == "result" && !nameRe().MatchString(v):
				return fmt.Errorf("result=%s: want a variable name", v)
			case st.Op == "ioctl" && !ok && f != "nocap" && st.Args[0] == "backing-open":
				if err := sc.checkBackingPath(f); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// checkBackingPath checks the backing filesystem a BackingPath names.
func (sc *Scope) checkBackingPath(p string) error {
	name, rel := SplitBackingPath(p)
	if !validRel(rel) {
		return fmt.Errorf("%q is not a valid backing path (PATH or NAME:PATH, PATH relative)", p)
	}
	if name == "" {
		return nil
	}
	return sc.checkBacking(name)
}

// checkBacking checks that a backing filesystem name was declared.
func (sc *Scope) checkBacking(name string) error {
	if !sc.backings[name] {
		return fmt.Errorf("no backing filesystem %q is mounted before (backing SIZE as=%s)", name, name)
	}
	return nil
}

// SplitBackingPath splits a BackingPath operand into the name of its
// backing filesystem ("" for the main backing tmpfs) and the path on it.
func SplitBackingPath(p string) (name, rel string) {
	if name, rel, ok := strings.Cut(p, ":"); ok {
		return name, rel
	}
	return "", p
}

// validRel reports whether p is a path below a directory.
func validRel(p string) bool {
	return p != "" && !strings.HasPrefix(p, "/") && !strings.Contains(p, "..")
}

func stripComment(line string) string {
	inQ := false
	for i := 0; i < len(line); i++ {
		switch line[i] {
		case '\\':
			i++
		case '"':
			inQ = !inQ
		case '#':
			if !inQ {
				return strings.TrimSpace(line[:i])
			}
		}
	}
	return strings.TrimSpace(line)
}

// splitLine splits a step into words (quoted strings unquoted) and the raw
// text after "=>".
func splitLine(line string) ([]string, string, error) {
	var words []string
	expect := ""
	for i := 0; i < len(line); {
		switch c := line[i]; {
		case c == ' ' || c == '\t':
			i++
		case strings.HasPrefix(line[i:], "=>"):
			expect = strings.TrimSpace(line[i+2:])
			if expect == "" {
				return nil, "", fmt.Errorf("=> needs an outcome")
			}
			i = len(line)
		case c == '"':
			j := i + 1
			for ; j < len(line) && line[j] != '"'; j++ {
				if line[j] == '\\' {
					j++
				}
			}
			if j >= len(line) {
				return nil, "", fmt.Errorf("unterminated string")
			}
			w, err := strconv.Unquote(line[i : j+1])
			if err != nil {
				return nil, "", fmt.Errorf("bad string %s", line[i:j+1])
			}
			words = append(words, "\x00"+w) // mark as quoted
			i = j + 1
		default:
			j := i
			for j < len(line) && line[j] != ' ' && line[j] != '\t' {
				j++
			}
			words = append(words, line[i:j])
			i = j
		}
	}
	if len(words) == 0 || strings.HasPrefix(words[0], "\x00") {
		return nil, "", fmt.Errorf("a step starts with an op name")
	}
	return words, expect, nil
}

// IsQuoted reports whether an argument was written as a string literal, and
// returns its text.
func IsQuoted(arg string) (string, bool) {
	if strings.HasPrefix(arg, "\x00") {
		return arg[1:], true
	}
	return arg, false
}

func checkArgs(spec OpSpec, args []string) error {
	fixed := spec.Args
	variadic := len(fixed) > 0 && fixed[len(fixed)-1] == Flag
	if variadic {
		fixed = fixed[:len(fixed)-1]
	}
	if len(args) < len(fixed) || (!variadic && len(args) > len(fixed)) {
		return fmt.Errorf("want %d operand(s), got %d", len(fixed), len(args))
	}
	for i, a := range args {
		kind := Flag
		if i < len(fixed) {
			kind = fixed[i]
		}
		text, quoted := IsQuoted(a)
		bad := false
		switch kind {
		case Handle, Conn:
			bad = quoted || !nameRe().MatchString(text)
		case Path:
			bad = !validRel(text)
		case BackingPath:
			name, rel := SplitBackingPath(text)
			bad = quoted || !validRel(rel) || (name != "" && !nameRe().MatchString(name))
		case Size:
			bad = quoted || !sizeRe().MatchString(text)
		case Count:
			n, err := strconv.Atoi(text)
			bad = quoted || err != nil || n < 0
		case Duration:
			d, err := time.ParseDuration(text)
			bad = quoted || err != nil || d <= 0
		case Value:
			bad = !quoted && !strings.HasPrefix(text, "$")
		case Flag:
			bad = quoted
		}
		if bad {
			return fmt.Errorf("operand %d %q is not a valid %s", i+1, text, argNames[kind])
		}
	}
	return nil
}

var argNames = map[Arg]string{Word: "word", Handle: "handle name", Path: "relative path", BackingPath: "backing path (PATH or NAME:PATH)", Conn: "connection name", Size: "size (e.g. 16M)", Count: "count", Duration: "duration (e.g. 5s)", Value: "quoted string or $var", Flag: "flag"}

func parseOutcome(s string) (*Outcome, error) {
	if claim, rest, ok := strings.Cut(s, "?"); ok {
		a, b, ok := strings.Cut(rest, ":")
		claim, a, b = strings.TrimSpace(claim), strings.TrimSpace(a), strings.TrimSpace(b)
		if !ok || !claimRe().MatchString(claim) {
			return nil, fmt.Errorf("conditional outcome must be CLAIM ? OUTCOME : OUTCOME")
		}
		for _, x := range []string{a, b} {
			if err := checkOutcome(x); err != nil {
				return nil, err
			}
		}
		return &Outcome{Claim: claim, IfClaim: a, Else: b}, nil
	}
	if err := checkOutcome(s); err != nil {
		return nil, err
	}
	return &Outcome{IfClaim: s}, nil
}

func checkOutcome(s string) error {
	if s == Any {
		return nil
	}
	for _, alt := range strings.Split(s, "|") {
		if alt != "ok" && !ErrnoRe().MatchString(alt) {
			return fmt.Errorf("bad outcome %q (want ok, any, an errno like EIO, or alternatives like ok|ENOMEM)", s)
		}
	}
	return nil
}

// Accepts reports whether a step that gave got meets the resolved
// outcome want: any, one outcome, or alternatives joined by "|".
func Accepts(want, got string) bool {
	if want == Any {
		return true
	}
	for _, alt := range strings.Split(want, "|") {
		if alt == got {
			return true
		}
	}
	return false
}

// ParseSize parses 4096, 16K, 16M or 1G.
func ParseSize(s string) (int64, error) {
	if !sizeRe().MatchString(s) {
		return 0, fmt.Errorf("bad size %q", s)
	}
	mult := int64(1)
	switch s[len(s)-1] {
	case 'K':
		mult = 1 << 10
	case 'M':
		mult = 1 << 20
	case 'G':
		mult = 1 << 30
	}
	n, err := strconv.ParseInt(strings.TrimRight(s, "KMG"), 10, 64)
	return n * mult, err
}
