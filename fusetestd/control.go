package fusetestd

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"fusevm/fuseabi"
	"fusevm/fusetestd/ctl"
)

// listenControl serves the control socket. The keeper grants one
// generation at a time, so a socket file left there is a dead one's.
func (d *daemon) listenControl() (*net.UnixListener, error) {
	sock := ctl.DaemonSocket(d.cfg.State)
	os.Remove(sock)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	go func() {
		for {
			c, err := ln.AcceptUnix()
			if err != nil {
				return
			}
			go d.serveControl(ctl.NewLineConn(c))
		}
	}()
	return ln, nil
}

func (d *daemon) serveControl(c *ctl.LineConn) {
	defer c.Close()
	for {
		var req ctl.Request
		fds, err := c.Receive(&req)
		closeFDs(fds)
		if err != nil {
			return
		}
		resp, err := d.control(req)
		if err != nil {
			resp = ctl.Response{Error: err.Error()}
		} else {
			resp.OK = true
		}
		if c.Send(resp) != nil {
			return
		}
	}
}

func (d *daemon) control(req ctl.Request) (ctl.Response, error) {
	switch req.Op {
	case ctl.OpStatus:
		st := d.status()
		return ctl.Response{Status: &st}, nil
	case ctl.OpNextOpenID:
		rel, err := cleanRel(req.Path)
		if err != nil {
			return ctl.Response{}, err
		}
		d.mu.Lock()
		d.forced[rel] = req.ID
		d.mu.Unlock()
		return ctl.Response{}, nil
	case ctl.OpHold:
		op, err := fuseabi.ParseOpcode(req.Opcode)
		if err != nil {
			return ctl.Response{}, err
		}
		d.mu.Lock()
		d.holding[op] = true
		d.mu.Unlock()
		return ctl.Response{}, nil
	case ctl.OpReleaseHeld:
		var op fuseabi.Opcode
		if req.Opcode != "" {
			var err error
			if op, err = fuseabi.ParseOpcode(req.Opcode); err != nil {
				return ctl.Response{}, err
			}
		}
		return ctl.Response{Count: d.releaseHeld(op, req.Opcode == "")}, nil
	case ctl.OpBackingOpen:
		rel, err := cleanRel(req.Path)
		if err != nil {
			return ctl.Response{}, err
		}
		fd, err := unix.Open(d.abs(rel), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return ctl.Response{}, fmt.Errorf("open backing file %s: %w", rel, err)
		}
		defer unix.Close(fd)
		id, err := fuseabi.BackingOpen(d.dev, fd)
		if err != nil {
			return ctl.Response{Errno: errnoName(err)}, nil
		}
		d.mu.Lock()
		d.ctlIDs[id] = rel
		d.idsOpened++
		d.mu.Unlock()
		return ctl.Response{ID: id}, nil
	case ctl.OpBackingClose:
		err := fuseabi.BackingClose(d.dev, req.ID)
		if err == nil {
			d.mu.Lock()
			delete(d.ctlIDs, req.ID)
			d.mu.Unlock()
		}
		return ctl.Response{Errno: errnoName(err)}, nil
	}
	return ctl.Response{}, fmt.Errorf("unknown op %q", req.Op)
}

// cleanRel checks a path relative to the mount root.
func cleanRel(p string) (string, error) {
	rel := filepath.Clean(strings.TrimPrefix(p, "/"))
	if p == "" || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("path %q: want a file below the mount root", p)
	}
	return rel, nil
}

func (d *daemon) status() ctl.Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := ctl.Status{
		Generation:      d.lease.Generation,
		PID:             os.Getpid(),
		Serving:         d.serving,
		Passthrough:     d.passthrough,
		PlainIO:         d.plainIO,
		IDPolicy:        "per-inode",
		InodeCacheFlag:  d.inodeCacheFlag,
		BackingIDs:      d.backingIDsLocked(),
		IDsOpened:       d.idsOpened,
		Recovery:        d.recovery,
		ResendErrno:     d.resendErrno,
		Served:          map[string]uint64{},
		Held:            map[string]int{},
		Holding:         []string{},
		UnknownReleases: d.unknownReleases,
	}
	if d.cfg.IDPerOpen {
		st.IDPolicy = "per-open"
	}
	for op, n := range d.served {
		st.Served[op.String()] = n
	}
	for _, req := range d.held {
		h, _ := fuseabi.ParseInHeader(req)
		st.Held[h.Opcode.String()]++
	}
	for op := range d.holding {
		st.Holding = append(st.Holding, op.String())
	}
	slices.Sort(st.Holding)
	return st
}
