package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// progress renders kernel.Logger calls: a live, rewritten status line on a
// terminal, plain "stage ... done" lines otherwise.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	stage string
	last  time.Time
}

func newProgress(f *os.File) *progress {
	return &progress{w: f, tty: term.IsTerminal(int(f.Fd()))}
}

// Stage implements kernel.Logger.
func (p *progress) Stage(what string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stage = what
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K==> %s", what)
	} else {
		fmt.Fprintf(p.w, "==> %s\n", what)
	}
}

// Progress implements kernel.Logger; at most 10 updates a second.
func (p *progress) Progress(detail string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.tty || time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	line := fmt.Sprintf("==> %s: %s", p.stage, detail)
	if len(line) > 100 {
		line = line[:100]
	}
	fmt.Fprintf(p.w, "\r\033[K%s", line)
}

// Done implements kernel.Logger.
func (p *progress) Done(what string, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		fmt.Fprint(p.w, "\r\033[K")
	}
	fmt.Fprintf(p.w, "==> %s: done in %s\n", what, d.Round(100*time.Millisecond))
}

// Printf prints a plain line, clearing a live line first.
func (p *progress) Printf(format string, a ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		fmt.Fprint(p.w, "\r\033[K")
	}
	fmt.Fprintf(p.w, format+"\n", a...)
}
