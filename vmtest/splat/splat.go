package splat

import (
	"regexp"
	"strings"

	"fusevm/internal/lazyre"
)

// Kind classifies a splat.
type Kind string

// Splat kinds.
const (
	BUG      Kind = "BUG"       // kernel BUG at, sleeping in atomic, slab corruption, ...
	WARNING  Kind = "WARNING"   // WARN_ON and friends
	Oops     Kind = "Oops"      // NULL dereference, page fault, general protection fault
	KASAN    Kind = "KASAN"     // KASAN memory error report
	KFENCE   Kind = "KFENCE"    // KFENCE memory error report
	UBSAN    Kind = "UBSAN"     // undefined behaviour
	Lockdep  Kind = "lockdep"   // lock dependency or RCU usage report
	RCUStall Kind = "RCU stall" // RCU CPU or task stall
	Lockup   Kind = "lockup"    // soft, hard or workqueue lockup
	HungTask Kind = "hung task" // task blocked in D state too long
	Panic    Kind = "panic"     // Kernel panic - not syncing
	// Unknown is a report whose first line the scanner knows as the start
	// of a kernel report but whose shape it cannot read: it is kept, titled
	// "unrecognised kernel report: <first line>", never dropped.
	Unknown Kind = "unrecognised"
)

// Report is one splat found in a console log.
type Report struct {
	Kind Kind
	// Title is one line naming the splat and where it hit, e.g.
	// "KASAN: slab-use-after-free Read in idr_for_each".
	Title string
	// Text is the splat as printed (carriage returns removed).
	Text string
	// Offset is the byte offset in the console of the splat's first line.
	Offset int
}

// Scan returns the splats in console, in order of appearance.
func Scan(console []byte) []Report {
	s := newScanner(console)
	return s.scan()
}

// ScanByScenario scans console and groups the splats by the scenario
// running when each was printed, as bracketed by the agent's
// "fusevm: scenario <name> start" and "... end" lines. Splats outside any
// scenario are listed under "". Scenarios without splats are absent.
func ScanByScenario(console []byte) map[string][]Report {
	s := newScanner(console)
	reps := s.scan()
	out := map[string][]Report{}
	for _, r := range reps {
		name := ""
		for _, ln := range s.lines {
			if ln.off > r.Offset {
				break
			}
			if m := markerRe().FindStringSubmatch(ln.msg); m != nil {
				if m[2] == "start" {
					name = m[1]
				} else if m[1] == name {
					name = ""
				}
			}
		}
		out[name] = append(out[name], r)
	}
	return out
}

// markerRe matches the agent's scenario markers.
var markerRe = lazyre.New(`^fusevm: scenario (\S+) (start|end)\s*$`)

// line is one console line.
type line struct {
	off   int    // offset of the line in the console
	raw   string // the line without its newline and carriage returns
	msg   string // raw without the printk timestamp and caller prefix
	stamp bool   // it had a printk timestamp
}

// printkPrefix matches "[    1.234567] " and "[    1.234567][    T1] ". It
// is searched anywhere in a line: userspace writing to the console at the
// same moment can leave its text before the kernel's record.
var printkPrefix = lazyre.New(`(?:<\d>)?\[\s*\d+\.\d{6}\](?:\[\s*[CT]\d+\])? ?`)

type scanner struct {
	console []byte
	lines   []line
	stamped bool // some line carries a printk timestamp
}

func newScanner(console []byte) *scanner {
	s := &scanner{console: console}
	off := 0
	for off < len(console) {
		end := len(console)
		next := end
		if i := strings.IndexByte(string(console[off:]), '\n'); i >= 0 {
			end = off + i
			next = end + 1
		}
		raw := strings.ReplaceAll(string(console[off:end]), "\r", "")
		msg := raw
		stamp := false
		if loc := printkPrefix().FindStringIndex(raw); loc != nil {
			msg, stamp = raw[loc[1]:], true
			s.stamped = true
		}
		s.lines = append(s.lines, line{off: off, raw: raw, msg: msg, stamp: stamp})
		off = next
	}
	return s
}

// endRule says how a splat's text ends.
type endRule int

const (
	endTrace endRule = iota // "---[ end trace ... ]---"
	endRuler                // a line of '=' (KASAN, KFENCE, UBSAN), or end trace
	endPanic                // "---[ end Kernel panic ...", else what follows
	endTask                 // the last "</TASK>" of the splat
)

// matcher recognises the first line of one splat shape.
type matcher struct {
	re    func() *regexp.Regexp
	kind  Kind
	shape bool                  // confirm with a kernel-shaped line below
	above func() *regexp.Regexp // include preceding lines up to one matching this
	end   endRule
	title func(s *scanner, b block, m []string) string
}

// block is a splat's line range [start, end) and its header line.
type block struct {
	head, start, end int
}

var (
	rulerRe   = lazyre.New(`^={20,}\s*$`)
	cutHereRe = lazyre.New(`^-+\[ cut here \]-+\s*$`)
	frameUpRe = lazyre.New(`^(?:={20,}|-+\[ cut here \]-+)\s*$`)
	shapeRe   = lazyre.New(`^(?:CPU: \d+ |Call Trace:|RIP: |Hardware name: )`)
	ripRe     = lazyre.New(`^RIP: \w+:.*?([A-Za-z_][\w.]*)\+0x[0-9a-f]+/0x[0-9a-f]+`)
	frameRe   = lazyre.New(`^\s*(\? )?(?:\[<[0-9a-f]+>\] )?([A-Za-z_][\w.]*)\+0x[0-9a-f]+/0x[0-9a-f]+`)
	lockAtRe  = lazyre.New(`\bat: ([A-Za-z_][\w.]*)\+0x[0-9a-f]+/0x[0-9a-f]+`)
	accessRe  = lazyre.New(`^(Read|Write) of size \d+`)
	rcuLocRe  = lazyre.New(`^(\S+:\d+) suspicious `)
	// dataCorruptionRe matches CHECK_DATA_CORRUPTION messages of list debugging.
	dataCorruptionRe = lazyre.New(`^list_(?:add|del) corruption`)
)

// matchers in priority order: specific shapes before generic ones.
var matchers = []*matcher{
	{
		re: lazyre.New(`^BUG: KASAN: ([\w-]+) in ([A-Za-z_][\w.]*)`), kind: KASAN,
		above: rulerRe, end: endRuler,
		title: func(s *scanner, b block, m []string) string {
			for i := b.head + 1; i < b.end && i <= b.head+6; i++ {
				if a := accessRe().FindStringSubmatch(s.lines[i].msg); a != nil {
					return "KASAN: " + m[1] + " " + a[1] + " in " + fn(m[2])
				}
			}
			return "KASAN: " + m[1] + " in " + fn(m[2])
		},
	},
	{
		re: lazyre.New(`^BUG: KFENCE: (.+?) in ([A-Za-z_][\w.]*)`), kind: KFENCE,
		above: rulerRe, end: endRuler,
		title: func(s *scanner, b block, m []string) string { return "KFENCE: " + m[1] + " in " + fn(m[2]) },
	},
	{
		re: lazyre.New(`^UBSAN: ([\w-]+) in (\S+)`), kind: UBSAN,
		above: frameUpRe, end: endRuler,
		title: func(s *scanner, b block, m []string) string {
			if f := s.firstFrame(b); f != "" {
				return "UBSAN: " + m[1] + " in " + f
			}
			return "UBSAN: " + m[1] + " in " + m[2]
		},
	},
	{
		re:   lazyre.New(`^WARNING: (possible circular locking dependency detected|possible recursive locking detected|possible irq lock inversion dependency detected|\S+ lock order detected|inconsistent lock state|bad unlock balance detected!|held lock freed!|lock held when returning to user space!|suspicious RCU usage)`),
		kind: Lockdep, above: rulerRe, end: endTask,
		title: func(s *scanner, b block, m []string) string {
			what := m[1]
			if what == "suspicious RCU usage" {
				for i := b.head + 1; i < b.end && i <= b.head+5; i++ {
					if l := rcuLocRe().FindStringSubmatch(s.lines[i].msg); l != nil {
						return "suspicious RCU usage at " + l[1]
					}
				}
				return "suspicious RCU usage"
			}
			f := s.lockFunc(b)
			switch {
			case strings.HasPrefix(what, "possible") || strings.HasSuffix(what, "lock order detected"):
				return "possible deadlock in " + f
			case what == "inconsistent lock state":
				return "inconsistent lock state in " + f
			}
			return strings.TrimSuffix(strings.TrimSuffix(what, "!"), " detected") + " in " + f
		},
	},
	{
		// "WARNING: CPU: 0 PID: 1 at fs/fuse/iomode.c:12 fuse_x+0x1/0x2",
		// the newer "WARNING: fs/fuse/iomode.c:12 at fuse_x+0x1/0x2, CPU#0: a/1"
		// and, without KALLSYMS, "WARNING: fs/fuse/iomode.c:12 at 0xffffffff8116c23b, CPU#0: a/1".
		re:   lazyre.New(`^WARNING: (?:CPU: \d+ (?:UID: \d+ )?PID: \d+ at (\S+) ([A-Za-z_][\w.]*)|(\S+:\d+) at (?:([A-Za-z_][\w.]*)\+0x|0x[0-9a-f]+,))`),
		kind: WARNING, above: cutHereRe, end: endTrace,
		title: func(s *scanner, b block, m []string) string {
			loc, f := m[1]+m[3], m[2]+m[4]
			if f == "" {
				return "WARNING at " + loc
			}
			f = fn(f)
			if skipFrame(f) {
				if g := s.firstFrame(b); g != "" {
					f = g
				}
			}
			if t := s.messageTitle(b, f); t != "" {
				return t
			}
			return "WARNING in " + f
		},
	},
	{
		re: lazyre.New(`^kernel BUG at (\S+?)!?$`), kind: BUG, above: cutHereRe, end: endTrace,
		title: func(s *scanner, b block, m []string) string {
			f := s.ripFunc(b)
			if f != "" && skipFrame(f) {
				if g := s.firstFrame(b); g != "" {
					f = g
				}
			}
			if t := s.messageTitle(b, f); t != "" {
				return t
			}
			if f == "" {
				return "kernel BUG at " + m[1]
			}
			return "kernel BUG in " + f
		},
	},
	{
		re: lazyre.New(`^BUG: (?:kernel NULL pointer dereference|unable to handle kernel NULL pointer dereference)`), kind: Oops, end: endTrace,
		title: func(s *scanner, b block, m []string) string {
			return in("BUG: kernel NULL pointer dereference", s.ripFunc(b))
		},
	},
	{
		re: lazyre.New(`^BUG: unable to handle (?:page fault|kernel paging request)`), kind: Oops, end: endTrace,
		title: func(s *scanner, b block, m []string) string {
			return in("BUG: unable to handle kernel paging request", s.ripFunc(b))
		},
	},
	{
		re: lazyre.New(`^(?:Oops: )?general protection fault`), kind: Oops, end: endTrace,
		title: func(s *scanner, b block, m []string) string {
			return in("general protection fault", s.ripFunc(b))
		},
	},
	{
		re: lazyre.New(`^(?:watchdog: )?BUG: soft lockup - CPU#\d+ stuck`), kind: Lockup, end: endTask,
		title: func(s *scanner, b block, m []string) string { return in("BUG: soft lockup", s.ripFunc(b)) },
	},
	{
		re: lazyre.New(`^(?:watchdog: )?(?:Watchdog detected hard LOCKUP|CPU\d+: Watchdog detected hard LOCKUP)`), kind: Lockup, end: endTask,
		title: func(s *scanner, b block, m []string) string { return in("BUG: hard lockup", s.ripFunc(b)) },
	},
	{
		re: lazyre.New(`^BUG: workqueue lockup`), kind: Lockup, end: endTask,
		title: func(s *scanner, b block, m []string) string { return "BUG: workqueue lockup" },
	},
	{
		re: lazyre.New(`^BUG: (sleeping function called from invalid context|scheduling while atomic)`), kind: BUG, end: endTask,
		title: func(s *scanner, b block, m []string) string { return in("BUG: "+m[1], s.firstFrame(b)) },
	},
	{
		re: lazyre.New(`^(?:rcu: )?INFO: \w+ (?:detected (?:expedited )?stalls?|self-detected stall)`), kind: RCUStall, end: endTask,
		title: func(s *scanner, b block, m []string) string {
			f := s.ripFunc(b)
			if f == "" || skipFrame(f) {
				f = s.firstFrame(b)
			}
			return in("INFO: rcu detected stall", f)
		},
	},
	{
		re: lazyre.New(`^INFO: task \S+:\d+ blocked for more than \d+ seconds`), kind: HungTask, end: endTask,
		title: func(s *scanner, b block, m []string) string { return in("INFO: task hung", s.firstFrame(b)) },
	},
	{
		re: lazyre.New(`^Kernel panic - not syncing:? ?(.*)$`), kind: Panic, end: endPanic,
		title: func(s *scanner, b block, m []string) string {
			msg := strings.TrimSpace(m[1])
			if i := strings.Index(msg, " exitcode="); i >= 0 {
				msg = msg[:i]
			}
			// The first sentence names the panic; advice follows it.
			if i := strings.Index(msg, ". "); i > 0 {
				msg = msg[:i]
			}
			msg = strings.TrimSuffix(msg, ".")
			return "kernel panic: " + msg
		},
	},
	{
		// SLUB debug: "BUG kmalloc-64 (Not tainted): Poison overwritten".
		re:   lazyre.New(`^BUG ([\w-]+(?:\([^)]*\))?) \((?:Not tainted|Tainted: [^)]*)\): (.+)$`),
		kind: BUG, above: rulerRe, end: endTask,
		title: func(s *scanner, b block, m []string) string {
			return "BUG: slab " + m[1] + ": " + strings.TrimSpace(m[2])
		},
	},
	{
		re: lazyre.New(`^Oops: `), kind: Oops, shape: true, end: endTrace,
		title: func(s *scanner, b block, m []string) string { return in("Oops", s.ripFunc(b)) },
	},
	{
		re: lazyre.New(`^BUG: (.+)$`), kind: BUG, shape: true, end: endTask,
		title: func(s *scanner, b block, m []string) string {
			msg := m[1]
			for _, sep := range []string{", ", "  ", " - ", ": "} {
				if i := strings.Index(msg, sep); i > 0 {
					msg = msg[:i]
				}
			}
			return "BUG: " + strings.TrimSpace(msg)
		},
	},
}

// reportStartRe matches every console line that starts a kernel report,
// whatever follows it: the "cut here" marker of WARN and BUG, the headers of
// WARNING, BUG (KASAN, KFENCE, KMSAN, soft lockup and sleeping-in-atomic
// included), kernel BUG, Oops, general protection fault, panic, UBSAN,
// refcount_t and list corruption messages, lockup watchdogs, hung tasks,
// RCU stalls, lockdep's own reports and a bare call trace. A line that
// matches here but starts no known shape becomes an Unknown report.
var reportStartRe = lazyre.New(`^(?:-+\[ cut here \]-+|WARNING:|BUG[: ]|kernel BUG|Oops|general protection fault|Kernel panic|UBSAN:|refcount_t: |list_\w+ corruption|(?:NMI )?watchdog: (?:BUG|Watchdog detected)|\S+: Watchdog detected|Watchdog detected|INFO: task |INFO: rcu|INFO: trying to register non-static key|rcu: INFO:|rcu: \S.* stall|DEBUG_LOCKS_WARN_ON|Unable to handle kernel|Call Trace:|kernel tried to execute)`)

// unknownMatcher frames an Unknown report: from its first line to the end
// of the trace, or to where kernel-shaped lines stop.
var unknownMatcher = &matcher{
	kind: Unknown, end: endTrace,
	title: func(s *scanner, b block, m []string) string {
		first := strings.TrimSpace(m[0])
		if cutHereRe().MatchString(first) && b.head+1 < b.end {
			// The marker says nothing; the line below it does.
			first = strings.TrimSpace(s.lines[b.head+1].msg)
		}
		if len(first) > 160 {
			first = first[:160]
		}
		return "unrecognised kernel report: " + first
	},
}

// startsUnknown reports whether line i starts a kernel report of a shape no
// matcher knows. A line that a known report just below takes in (its "cut
// here" marker, a WARN message, a refcount_t or list corruption line) is
// left to that report.
func (s *scanner) startsUnknown(i int) bool {
	if s.stamped && !s.lines[i].stamp {
		// The kernel stamps every record; an unstamped line on such a
		// console is userspace writing to it.
		return false
	}
	if !reportStartRe().MatchString(s.lines[i].msg) {
		return false
	}
	for k := i + 1; k < len(s.lines) && k <= i+5; k++ {
		if markerRe().MatchString(s.lines[k].msg) {
			break
		}
		m, _ := s.match(k, nil)
		if m == nil {
			continue
		}
		start := s.blockStart(k, m, 0)
		if start-1 == i && start < k && dataCorruptionRe().MatchString(s.lines[i].msg) {
			start = i
		}
		return start > i
	}
	return true
}

// wedgedRe matches the headers of reports after which the guest will not
// finish its scenario on its own: a task blocked in D state, an RCU stall.
var wedgedRe = lazyre.New(`^(?:INFO: task \S+:\d+ blocked for more than|(?:rcu: )?INFO: \w+ (?:detected (?:expedited )?stalls?|self-detected stall))`)

// Wedged reports whether a console line is the header of a report after
// which the guest will not finish its scenario on its own, so the host
// may stop the VM once the report is printed.
func Wedged(line string) bool {
	if loc := printkPrefix().FindStringIndex(line); loc != nil {
		line = line[loc[1]:]
	}
	return wedgedRe().MatchString(strings.TrimRight(line, "\r"))
}

// maxBlock bounds a splat's length in lines.
const maxBlock = 400

// scan walks the lines and cuts out each splat.
func (s *scanner) scan() []Report {
	var out []Report
	floor := 0 // lines before floor belong to an earlier splat
	for i := 0; i < len(s.lines); {
		m, sub := s.match(i, nil)
		if m == nil {
			if !s.startsUnknown(i) {
				i++
				continue
			}
			// Fail closed: a report we cannot read is still a report.
			m, sub = unknownMatcher, []string{s.lines[i].msg}
		}
		b := block{head: i, start: s.blockStart(i, m, floor)}
		if k := b.start - 1; k >= floor && b.start < i && dataCorruptionRe().MatchString(s.lines[k].msg) {
			// CHECK_DATA_CORRUPTION prints its message before BUG()'s
			// "cut here".
			b.start = k
		}
		b.end = s.blockEnd(b, m)
		text := make([]string, 0, b.end-b.start)
		for _, ln := range s.lines[b.start:b.end] {
			text = append(text, ln.raw)
		}
		out = append(out, Report{
			Kind:   m.kind,
			Title:  m.title(s, b, sub),
			Text:   strings.Join(text, "\n") + "\n",
			Offset: s.lines[b.start].off,
		})
		floor = b.end
		i = max(b.end, i+1)
	}
	return out
}

// match returns the matcher whose shape starts at line i. Inside an open
// splat of kind open, continuation lines of that splat do not count.
func (s *scanner) match(i int, open *matcher) (*matcher, []string) {
	msg := s.lines[i].msg
	if !strings.HasPrefix(msg, "BUG") && !strings.HasPrefix(msg, "WARNING: ") &&
		!strings.HasPrefix(msg, "INFO: ") && !strings.HasPrefix(msg, "rcu: INFO: ") &&
		!strings.HasPrefix(msg, "Kernel panic") && !strings.HasPrefix(msg, "kernel BUG") &&
		!strings.HasPrefix(msg, "UBSAN: ") && !strings.HasPrefix(msg, "Oops: ") &&
		!strings.HasPrefix(msg, "general protection") && !strings.HasPrefix(msg, "watchdog: ") &&
		!strings.Contains(msg, "Watchdog detected") {
		return nil, nil
	}
	for _, m := range matchers {
		sub := m.re().FindStringSubmatch(msg)
		if sub == nil {
			continue
		}
		if open != nil && (open.kind == Oops || open.kind == BUG) &&
			(m.kind == Oops && (strings.HasPrefix(msg, "Oops: ") || strings.HasPrefix(msg, "general protection"))) {
			// "Oops: 0000 [#1]" and "Oops: general protection fault" lines
			// continue a BUG/page fault report already open.
			return nil, nil
		}
		if m.shape && !s.shaped(i) {
			continue
		}
		return m, sub
	}
	return nil, nil
}

// shaped reports whether a kernel-shaped line follows line i closely.
func (s *scanner) shaped(i int) bool {
	for k := i + 1; k < len(s.lines) && k <= i+40; k++ {
		if shapeRe().MatchString(s.lines[k].msg) {
			return true
		}
	}
	return false
}

// blockStart extends a splat upwards to its framing line (a ruler or "cut
// here", up to 4 lines above, e.g. past a WARN message), not below floor.
func (s *scanner) blockStart(i int, m *matcher, floor int) int {
	if m.above == nil {
		return i
	}
	for k := i - 1; k >= floor && k >= i-4; k-- {
		if m.above().MatchString(s.lines[k].msg) {
			return k
		}
		if markerRe().MatchString(s.lines[k].msg) {
			break
		}
	}
	return i
}

// blockEnd finds where the splat that starts at b ends (exclusive).
func (s *scanner) blockEnd(b block, m *matcher) int {
	limit := min(len(s.lines), b.head+maxBlock)
	lastTask := -1
	k := b.head + 1
	for ; k < limit; k++ {
		msg := s.lines[k].msg
		if markerRe().MatchString(msg) {
			break
		}
		if n, _ := s.match(k, m); n != nil {
			k = s.blockStart(k, n, b.head+1)
			break
		}
		switch {
		case strings.HasPrefix(msg, "---[ end trace"):
			if m.end != endPanic {
				return k + 1
			}
		case strings.HasPrefix(msg, "---[ end Kernel panic"):
			if m.end == endPanic {
				return k + 1
			}
		case m.end == endRuler && rulerRe().MatchString(msg):
			return k + 1
		case strings.TrimSpace(msg) == "</TASK>":
			lastTask = k + 1
		}
	}
	if m.end == endTask && lastTask > 0 {
		return lastTask
	}
	return s.trim(b.head, k)
}

// trim drops trailing lines of [head, end) that do not look like kernel
// output: without a printk timestamp when the header had one, or else not
// indented, not a frame and not a known splat line.
func (s *scanner) trim(head, end int) int {
	stamped := s.lines[head].stamp
	last := head + 1
	for k := head + 1; k < end; k++ {
		ln := s.lines[k]
		if stamped {
			if !ln.stamp {
				break
			}
			last = k + 1
			continue
		}
		if ln.msg == "" {
			break
		}
		if strings.HasPrefix(ln.msg, " ") || strings.HasPrefix(ln.msg, "\t") || frameRe().MatchString(ln.msg) ||
			kernelLineRe().MatchString(ln.msg) {
			last = k + 1
		}
	}
	return last
}

var kernelLineRe = lazyre.New(`^(?:CPU: |Hardware name: |Call Trace:|<\/?(?:TASK|IRQ|NMI|SOFTIRQ)>|RIP: |RSP: |R[A-Z0-9]{2}: |FS: |CS: |CR2: |DR[0-9]: |Code: |Modules linked in:|Kernel Offset:|Rebooting in|Workqueue: |Tainted: |#PF: |PGD |Oops: |\S+ #\d+ (?:Not tainted|Tainted))`)

// ripFunc returns the function of the first RIP line of the block.
func (s *scanner) ripFunc(b block) string {
	for _, ln := range s.lines[b.head:b.end] {
		if m := ripRe().FindStringSubmatch(ln.msg); m != nil {
			return fn(m[1])
		}
	}
	return ""
}

// firstFrame returns the first reliable, interesting frame of the block's
// first call trace.
func (s *scanner) firstFrame(b block) string {
	in := false
	for _, ln := range s.lines[b.head:b.end] {
		if strings.HasPrefix(ln.msg, "Call Trace:") {
			in = true
			continue
		}
		if !in {
			continue
		}
		m := frameRe().FindStringSubmatch(ln.msg)
		if m == nil || m[1] != "" {
			continue
		}
		if f := fn(m[2]); !skipFrame(f) {
			return f
		}
	}
	return ""
}

// lockFunc returns the function of lockdep's first "at: f+0x" line.
func (s *scanner) lockFunc(b block) string {
	for _, ln := range s.lines[b.head:b.end] {
		if m := lockAtRe().FindStringSubmatch(ln.msg); m != nil {
			return fn(m[1])
		}
	}
	if f := s.firstFrame(b); f != "" {
		return f
	}
	return "unknown"
}

// messageTitle names well-known WARN/BUG messages printed between "cut
// here" and the header.
func (s *scanner) messageTitle(b block, f string) string {
	for k := b.start; k < b.head; k++ {
		msg := s.lines[k].msg
		switch {
		case dataCorruptionRe().MatchString(msg):
			return in("BUG: corrupted list", f)
		case strings.HasPrefix(msg, "refcount_t: "):
			return in("refcount bug", f)
		}
	}
	return ""
}

// in appends " in f" when f is known.
func in(what, f string) string {
	if f == "" {
		return what
	}
	return what + " in " + f
}

// fn strips compiler suffixes (.isra.0, .constprop.0, .part.0, .cold).
func fn(s string) string {
	if i := strings.IndexByte(s, '.'); i > 0 {
		return s[:i]
	}
	return s
}

// skipFrame reports frames that name the reporting machinery, locking or
// scheduling rather than the code at fault.
func skipFrame(f string) bool {
	if skipExact[f] {
		return true
	}
	for _, p := range skipPrefixes {
		if strings.HasPrefix(f, p) {
			return true
		}
	}
	return false
}

var skipExact = map[string]bool{
	"schedule": true, "io_schedule": true, "panic": true, "die": true, "report_bug": true,
	"handle_bug": true, "exc_invalid_op": true, "asm_exc_invalid_op": true, "do_trap": true,
	"do_error_trap": true, "show_stack": true, "kfree": true, "down": true, "down_read": true,
	"down_write": true, "down_read_killable": true, "down_write_killable": true,
	"down_interruptible": true, "down_killable": true, "might_sleep": true,
	"finish_wait": true, "wait_woken": true, "bit_wait": true, "bit_wait_io": true,
	"out_of_line_wait_on_bit": true, "refcount_warn_saturate": true,
	"lock_acquire": true, "lock_release": true, "check_noncircular": true,
	"validate_chain": true, "check_prev_add": true, "check_prevs_add": true,
	"sched_show_task": true, "dump_cpu_task": true, "update_process_times": true,
	// list helpers, out of line under list debugging: the caller is at fault
	"list_del": true, "list_del_init": true, "list_add": true, "list_add_tail": true,
}

var skipPrefixes = []string{
	"dump_stack", "__dump_stack", "__warn", "warn_slowpath", "kasan_", "__kasan_", "__asan_",
	"print_", "check_memory_region", "kmsan_", "__might_", "___might_", "__schedule",
	"schedule_", "preempt_schedule", "io_schedule_", "__mutex_lock", "mutex_lock",
	"rwsem_down_", "__down", "wait_for_completion", "__wait_for_common", "wait_for_common",
	"do_wait_for_common", "__wait_", "prepare_to_wait", "_raw_spin_", "__raw_spin_",
	"queued_spin_lock", "do_raw_spin_", "_raw_read_", "_raw_write_", "__lock_acquire",
	"lockdep_", "__refcount_", "__list_add_valid", "__list_del_entry_valid", "ubsan_",
	"__ubsan_handle", "rcu_", "nmi_", "arch_trigger_", "trigger_", "tick_", "hrtimer_",
	"__hrtimer_", "__sysvec_", "sysvec_", "asm_sysvec_", "irq_exit", "__irq_exit",
	"lapic_", "kfence_", "__kfence_", "slab_free", "__slab_free", "kmem_cache_free",
}

// Section returns the console lines printed while the named scenario ran
// (between its start and end markers, exclusive), for excerpts in reports.
func Section(console []byte, scenario string) []string {
	s := newScanner(console)
	var out []string
	in := false
	for _, ln := range s.lines {
		if m := markerRe().FindStringSubmatch(ln.msg); m != nil && m[1] == scenario {
			in = m[2] == "start"
			continue
		}
		if in {
			out = append(out, ln.raw)
		}
	}
	return out
}
