package interp

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"fusevm/fuseabi"
	"fusevm/internal/failnth"
	"fusevm/scenarios/script"

	"golang.org/x/sys/unix"
)

// ioctl runs one backing ioctl on a dup of connection c's /dev/fuse fd.
// Flag nocap drops CAP_SYS_ADMIN from this thread's effective set for the
// call (capabilities are per thread; the thread is locked meanwhile).
// Flag fail-nth=N makes the call's Nth slab allocation fail (kernel fault
// injection); the step's detail says whether the call got that far.
// Flag result=VAR stores the outcome (ok or the errno's name).
func (r *runner) ioctl(c *connection, _ context.Context, st *script.Step) (string, string) {
	op := st.Args[0]
	var pos []string
	f := map[string]string{}
	for _, a := range st.Args[1:] {
		if k, v, ok := strings.Cut(a, "="); ok {
			f[k] = v
		} else if a == "nocap" {
			f["nocap"] = ""
		} else {
			pos = append(pos, a)
		}
	}
	fd, err := r.devFD(c)
	if err != nil {
		return fail("%v", err)
	}
	failN := 0
	if v, ok := f["fail-nth"]; ok {
		if failN, err = r.count(v); err != nil {
			return fail("fail-nth=%v", err)
		}
		if err := failnth.Setup(); err != nil {
			return fail("%v", err)
		}
	}
	_, nocap := f["nocap"]
	reached := false
	call := func(fn func() error) error {
		if failN > 0 {
			plain := fn
			fn = func() error {
				var err error
				reached, err = failnth.Do(failN, plain)
				return err
			}
		}
		if !nocap {
			return fn()
		}
		// Capabilities first: capset allocates new credentials, and
		// that allocation must not be the one fail-nth counts.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		restore, err := dropSysAdmin()
		if err != nil {
			return err
		}
		defer restore()
		return fn()
	}
	got, detail := r.ioctlOp(op, pos, f, fd, call)
	if failN > 0 {
		note := fmt.Sprintf("slab allocation %d failed", failN)
		if !reached {
			note = fmt.Sprintf("fewer than %d slab allocations: none failed", failN)
		}
		if detail != "" {
			note = detail + "; " + note
		}
		detail = note
	}
	if v, ok := f["result"]; ok {
		r.mu.Lock()
		r.vars[v] = got
		r.mu.Unlock()
	}
	return got, detail
}

// ioctlOp runs ioctl op through call (which applies nocap and fail-nth).
func (r *runner) ioctlOp(op string, pos []string, f map[string]string, fd int, call func(func() error) error) (string, string) {
	switch op {
	case "close-all":
		return outcome(call(func() error { return fuseabi.BackingCloseAll(fd) }))
	case "close-minus-one":
		return outcome(call(func() error { return fuseabi.BackingCloseMinusOne(fd) }))
	case "backing-close":
		if len(pos) != 1 {
			return fail("backing-close takes one id")
		}
		v, err := r.value(pos[0])
		if err != nil {
			v = pos[0]
		}
		id, err := strconv.ParseInt(v, 0, 32)
		if err != nil {
			return fail("backing id %q: %v", v, err)
		}
		return outcome(call(func() error { return fuseabi.BackingClose(fd, int32(id)) }))
	case "backing-open":
		if len(pos) != 1 {
			return fail("backing-open takes one path")
		}
		file, err := os.OpenFile(r.backingPath(pos[0]), os.O_RDWR, 0)
		if err != nil {
			return outcome(err)
		}
		defer file.Close()
		n := 1
		if c, ok := f["count"]; ok {
			if n, err = strconv.Atoi(c); err != nil || n < 1 {
				return fail("count=%s: want a positive number", c)
			}
		}
		var id int32
		err = call(func() error {
			for i := 0; i < n; i++ {
				var e error
				if id, e = fuseabi.BackingOpen(fd, int(file.Fd())); e != nil {
					return e
				}
			}
			return nil
		})
		if err != nil {
			return outcome(err)
		}
		return r.keep(f, "backing id", strconv.Itoa(int(id)))
	}
	return fail("unknown ioctl %q (want backing-open, backing-close, close-all, close-minus-one)", op)
}

// dropSysAdmin clears CAP_SYS_ADMIN from the calling thread's effective
// set and returns a function restoring it.
func dropSysAdmin() (func(), error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return nil, fmt.Errorf("capget: %w", err)
	}
	saved := data
	data[unix.CAP_SYS_ADMIN/32].Effective &^= 1 << (unix.CAP_SYS_ADMIN % 32)
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return nil, fmt.Errorf("capset: %w", err)
	}
	return func() { unix.Capset(&hdr, &saved[0]) }, nil
}
