package fusetestd

import (
	"fmt"

	"golang.org/x/sys/unix"

	"fusevm/fuseabi"
	"fusevm/fusetestd/ctl"
)

// recover applies the generation's recovery strategy, before serving.
// probeID is the id checkPassthrough registered (and closed), 0 without
// passthrough or with NoProbe. Kernel refusals are reported, never fatal:
// the generation serves anyway, as a production daemon would.
func (d *daemon) recover(probeID int32) ctl.Recovery {
	r := ctl.Recovery{Strategy: d.cfg.Recovery}
	switch d.cfg.Recovery {
	case RecoveryNone:
		r.Detail = "ids of earlier generations left registered"
	case RecoveryCloseAll:
		err := fuseabi.BackingCloseAll(d.dev)
		r.Errno = errnoName(err)
		switch err {
		case nil:
			r.Detail = "FUSE_DEV_IOC_BACKING_CLOSE_ALL closed every id"
		case unix.ENOTTY:
			r.Detail = "FUSE_DEV_IOC_BACKING_CLOSE_ALL unknown to this kernel"
		default:
			r.Detail = "FUSE_DEV_IOC_BACKING_CLOSE_ALL refused"
		}
	case RecoveryCloseMinusOne:
		err := fuseabi.BackingCloseMinusOne(d.dev)
		r.Errno = errnoName(err)
		switch err {
		case nil:
			r.Detail = "BACKING_CLOSE(-1) closed every id"
		case unix.EINVAL:
			r.Detail = "BACKING_CLOSE(-1) refused as an invalid id: no v1 close-all in this kernel"
		default:
			r.Detail = "BACKING_CLOSE(-1) refused"
		}
	case RecoveryScanClose:
		d.scanClose(probeID, &r)
	case RecoveryAdopt:
		r = d.adopt()
	}
	return r
}

// scanClose is the workaround for kernels without close-all: ids come from a
// cyclic counter (idr_alloc_cyclic from 1), so the probe id N says that
// every live id is below N, and closing 1..N-1 closes them all.
//
// Limits: it costs N-1 ioctls, however few ids are live; once the counter
// has wrapped past INT_MAX, live ids above N are missed; and it closes every
// id, this generation's too, so it must run before serving.
func (d *daemon) scanClose(probeID int32, r *ctl.Recovery) {
	switch {
	case d.plainIO:
		r.Errno = errnoName(unix.EPERM)
		r.Detail = "no passthrough: no probe id to scan below"
		return
	case probeID == 0:
		r.Errno = errnoName(unix.ENOTSUP)
		r.Detail = "--no-probe: no probe id to scan below, nothing closed"
		return
	}
	enoent := 0
	for id := int32(1); id < probeID; id++ {
		switch err := fuseabi.BackingClose(d.dev, id); err {
		case nil:
			r.Closed = append(r.Closed, id)
		case unix.ENOENT:
			enoent++
		default:
			if r.Errno == "" {
				r.Errno = errnoName(err)
			}
		}
	}
	r.Detail = fmt.Sprintf("probe id %d: closed %d ids below it, %d were free", probeID, len(r.Closed), enoent)
}
