// Package progress renders a run's progress on a terminal or in a log:
// the harness's Logger (stages, build progress, plain lines) and its
// Status (variant, elapsed time, ETA, VMs done).
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"fusevm/harness"
)

// Line renders the harness's progress (kernel.Logger calls, plain lines
// and harness.Status): on a terminal a live line, rewritten every
// second, with the stage, the variant, the time since the start, an ETA
// from the cache's past timings and the VMs done; in a log (CI), plain
// "==> stage" and "done" lines.
type Line struct {
	mu     sync.Mutex
	w      io.Writer
	tty    bool
	width  int
	stage  string
	detail string
	st     harness.Status
	hasSt  bool
	last   time.Time
	stop   chan struct{}
	closed bool
}

// New renders on f, live when f is a terminal. Close it when done.
func New(f *os.File) *Line {
	p := &Line{w: f, tty: term.IsTerminal(int(f.Fd())), width: 100}
	if p.tty {
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 20 {
			p.width = w - 1
		}
		p.stop = make(chan struct{})
		go p.tick()
	}
	return p
}

// tick redraws the live line every second, so that the elapsed time and
// the ETA move.
func (p *Line) tick() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			if p.stage != "" {
				p.draw()
			}
			p.mu.Unlock()
		}
	}
}

// close stops the live line and clears it. Idempotent.
func (p *Line) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	if p.tty {
		close(p.stop)
		fmt.Fprint(p.w, "\r\033[K")
	}
}

// draw writes the live line (p.mu held).
func (p *Line) draw() {
	if !p.tty || p.closed {
		return
	}
	line := "==> "
	if p.hasSt && p.st.Variant != "" && !strings.HasPrefix(p.stage, "boot ") {
		line += p.st.Variant + ": "
	}
	line += p.stage
	if p.detail != "" {
		line += ": " + p.detail
	}
	if p.hasSt {
		now := time.Now()
		info := []string{clock(now.Sub(p.st.Started))}
		if !p.st.Finish.IsZero() {
			info = append(info, "ETA "+clock(max(0, p.st.Finish.Sub(now))))
		}
		if p.st.Total > 0 {
			info = append(info, fmt.Sprintf("VMs %d/%d", p.st.Done, p.st.Total))
		}
		tail := "  [" + strings.Join(info, ", ") + "]"
		if len(line)+len(tail) > p.width {
			line = line[:max(0, p.width-len(tail))]
		}
		line += tail
	}
	if len(line) > p.width {
		line = line[:p.width]
	}
	fmt.Fprintf(p.w, "\r\033[K%s", line)
}

// clock is d as m:ss (or h:mm:ss).
func clock(d time.Duration) string {
	s := int(d.Round(time.Second).Seconds())
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// Stage implements kernel.Logger.
func (p *Line) Stage(what string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stage, p.detail = what, ""
	if p.tty {
		p.draw()
	} else {
		fmt.Fprintf(p.w, "==> %s\n", what)
	}
}

// Progress implements kernel.Logger; at most 10 updates a second.
func (p *Line) Progress(detail string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.tty || time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	p.detail = detail
	p.draw()
}

// Status implements harness.StatusLogger.
func (p *Line) Status(st harness.Status) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if st.Stage == "prepare" && (!p.hasSt || p.st.Variant != st.Variant) {
		// Until the kernel's own stages (fetch, configure, build) say more.
		p.stage, p.detail = "prepare", ""
	}
	p.st, p.hasSt = st, true
	p.draw()
}

// Done implements kernel.Logger.
func (p *Line) Done(what string, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		fmt.Fprint(p.w, "\r\033[K")
	}
	fmt.Fprintf(p.w, "==> %s: done in %s\n", what, d.Round(100*time.Millisecond))
	p.detail = ""
	p.draw()
}

// Printf prints a plain line, clearing a live line first.
func (p *Line) Printf(format string, a ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		fmt.Fprint(p.w, "\r\033[K")
	}
	fmt.Fprintf(p.w, format+"\n", a...)
	p.draw()
}
