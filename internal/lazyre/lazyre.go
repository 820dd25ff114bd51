// Package lazyre compiles a package's regular expressions at their first
// use instead of at program start.
//
// The fusevm binary is also the guest's /init, keeper and daemon, and every
// process it starts runs every package's initialisation. Under TCG, compiling
// the host side's report and source parsers took about 35 ms of each guest
// process start (GODEBUG=inittrace=1, BENCHMARKS.md "Process start"), paid
// twice by every scenario mount and once by every daemon restart; with lazyre
// only the processes that match a pattern compile it.
package lazyre

import (
	"regexp"
	"sync"
)

// New returns a function that compiles expr on its first call, panicking
// as regexp.MustCompile does if it is invalid, and returns that same
// *regexp.Regexp on every call.
func New(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}
