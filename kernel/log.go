package kernel

import "time"

// Logger receives progress from long stages. The CLI renders it as a live
// line on a terminal and as plain lines otherwise.
type Logger interface {
	// Stage says a stage began, e.g. "build 7.3.4+v2".
	Stage(what string)
	// Progress carries a live detail of the current stage, e.g. "CC fs/fuse/dev.o".
	Progress(detail string)
	// Done says a stage ended after d.
	Done(what string, d time.Duration)
}

// NopLogger discards progress.
type NopLogger struct{}

// Stage implements Logger.
func (NopLogger) Stage(string) {}

// Progress implements Logger.
func (NopLogger) Progress(string) {}

// Done implements Logger.
func (NopLogger) Done(string, time.Duration) {}
