// Package failnth makes one slab allocation of a system call fail, through
// the kernel's fault injection: a number written to
// /proc/thread-self/fail-nth makes the Nth allocation site that thread
// reaches fail (CONFIG_FAULT_INJECTION, CONFIG_FAILSLAB). The scenarios
// use it to run the ENOMEM paths of the code under test, which no
// ordinary load reaches.
//
// failslab leaves allocations that may sleep (GFP_KERNEL, most of them)
// alone unless told otherwise through debugfs
// (CONFIG_FAULT_INJECTION_DEBUG_FS): Setup does that, and keeps each
// injected failure to a one-line notice instead of a stack dump, which a
// kernel report scanner could take for a report.
package failnth

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrUnavailable means the running kernel cannot inject allocation
// failures: it lacks one of the options named in the error's text.
var ErrUnavailable = errors.New("no slab fault injection (needs CONFIG_FAULT_INJECTION, CONFIG_FAILSLAB and CONFIG_FAULT_INJECTION_DEBUG_FS)")

// debugfs is where Setup finds, or mounts, debugfs.
const debugfs = "/sys/kernel/debug"

// Setup prepares failslab for Do: injected failures hit sleeping
// allocations too (ignore-gfp-wait N) and print one line (verbose 1). It
// mounts debugfs if it is not mounted. The work is done once per process;
// later calls return the first answer.
func Setup() error { return setupOnce() }

var setupOnce = sync.OnceValue(setup)

func setup() error {
	if _, err := os.Stat("/proc/thread-self/fail-nth"); err != nil {
		return fmt.Errorf("%w: /proc/thread-self/fail-nth: %v", ErrUnavailable, err)
	}
	dir := debugfs + "/failslab"
	if _, err := os.Stat(dir); err != nil {
		if err := unix.Mount("debugfs", debugfs, "debugfs", 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("%w: mount debugfs on %s: %v", ErrUnavailable, debugfs, err)
		}
	}
	for name, v := range map[string]string{"ignore-gfp-wait": "N", "verbose": "1"} {
		if err := os.WriteFile(dir+"/"+name, []byte(v), 0); err != nil {
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
	}
	return nil
}

// Do runs fn on one OS thread whose nth slab allocation fails (n >= 1),
// and reports whether fn's system calls reached that allocation: when
// they made fewer, nothing failed and the count is disarmed again.
func Do(n int, fn func() error) (injected bool, err error) {
	if n < 1 {
		return false, fmt.Errorf("fail-nth %d: want a positive number", n)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// Opened before arming: opening a file allocates, and that
	// allocation would be the one to fail.
	f, err := os.OpenFile("/proc/thread-self/fail-nth", os.O_RDWR, 0)
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte(strconv.Itoa(n)), 0); err != nil {
		return false, fmt.Errorf("arm fail-nth: %w", err)
	}
	callErr := fn()
	buf := make([]byte, 16)
	m, rerr := f.ReadAt(buf, 0)
	if m == 0 && rerr != nil {
		return false, errors.Join(callErr, fmt.Errorf("read fail-nth: %w", rerr))
	}
	left, perr := strconv.Atoi(strings.TrimSpace(string(buf[:m])))
	if perr != nil {
		return false, errors.Join(callErr, fmt.Errorf("read fail-nth: %q", buf[:m]))
	}
	if left != 0 {
		if _, err := f.WriteAt([]byte("0"), 0); err != nil {
			return false, errors.Join(callErr, fmt.Errorf("disarm fail-nth: %w", err))
		}
	}
	return left == 0, callErr
}
