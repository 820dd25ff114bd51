package fusetestd

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"fusevm/fuseabi"
	"fusevm/fusetestd/ctl"
)

// This file keeps the backing-id table: which id each open handle answered
// with, who owns it, and when it is closed.
//
// Policy per-inode (the default, as libfuse's passthrough_hp): the first
// OPEN of an inode in this generation registers an id; later OPENs reuse it;
// the last RELEASE closes it. Policy per-open (--id-per-open): every OPEN
// registers a fresh id, closed at its RELEASE. A RELEASE of a handle this
// generation does not know was issued by a dead one: it is answered and
// ignored, so that generation's ids stay registered (the leak under test)
// unless the recovery strategy dealt with them.

// handle is one open file handle (fh).
type handle struct {
	nodeid uint64
	// fd is the handle's own backing fd; -1 for a handle adopted from a
	// dead generation, until READ or WRITE needs one.
	fd     int
	id     int32 // the backing id the OPEN answered with, 0 for none
	shared bool  // id is inodes[nodeid]'s, refcounted
	owned  bool  // id is this handle's own (per-open), closed at RELEASE
	// adopted: the handle comes from a dead generation's table.
	adopted bool
}

// inodeID is the shared backing id of an inode under the per-inode policy.
type inodeID struct {
	id     int32
	refs   int
	path   string
	origin string // "open" or "adopted"
}

// idTable is what `--recovery adopt` persists before each OPEN and RELEASE
// reply and what a successor adopts.
type idTable struct {
	// Token ties the table to one mount's connection.
	Token      string        `json:"token"`
	Generation int           `json:"generation"`
	Inodes     []tableInode  `json:"inodes"`
	Handles    []tableHandle `json:"handles"`
}

type tableInode struct {
	NodeID uint64 `json:"nodeid"`
	ID     int32  `json:"id"`
	Path   string `json:"path"`
}

type tableHandle struct {
	Fh     uint64 `json:"fh"`
	NodeID uint64 `json:"nodeid"`
	ID     int32  `json:"id"`
	Shared bool   `json:"shared"`
}

// newFhLocked returns a file handle number unique across generations: the
// generation in the high half.
func (d *daemon) newFhLocked() uint64 {
	d.nextFh++
	return uint64(d.lease.Generation)<<32 | d.nextFh
}

// openHandle answers an OPEN or CREATE of nodeid, whose backing file is open
// as fd.
func (d *daemon) openHandle(nodeid uint64, rel string, fd int, out *fuse.OpenOut) fuse.Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	h := &handle{nodeid: nodeid, fd: fd}
	if id, ok := d.forced[rel]; ok {
		delete(d.forced, rel)
		h.id = id
		d.log.Printf("OPEN %s: answering with backing id %d as ordered", rel, id)
	} else if !d.plainIO {
		switch ent := d.inodes[nodeid]; {
		case d.cfg.IDPerOpen:
			id, err := d.registerLocked(fd, rel)
			if err != nil {
				unix.Close(fd)
				return fuse.EIO
			}
			h.id, h.owned = id, true
		case ent != nil:
			ent.refs++
			h.id, h.shared = ent.id, true
		default:
			id, err := d.registerLocked(fd, rel)
			if err != nil {
				unix.Close(fd)
				return fuse.EIO
			}
			d.inodes[nodeid] = &inodeID{id: id, refs: 1, path: rel, origin: "open"}
			h.id, h.shared = id, true
		}
	}
	if h.id != 0 {
		out.OpenFlags |= fuseabi.OpenPassthrough | d.inodeCacheFlag
		out.BackingID = h.id
	}
	out.Fh = d.newFhLocked()
	d.handles[out.Fh] = h
	d.persistLocked()
	return fuse.OK
}

// releaseHandle handles RELEASE of fh.
func (d *daemon) releaseHandle(fh uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	h, ok := d.handles[fh]
	if !ok {
		d.unknownReleases++
		return
	}
	delete(d.handles, fh)
	if h.fd >= 0 {
		unix.Close(h.fd)
	}
	switch {
	case h.owned:
		d.closeIDLocked(h.id)
	case h.shared:
		if ent := d.inodes[h.nodeid]; ent != nil {
			if ent.refs--; ent.refs <= 0 {
				d.closeIDLocked(ent.id)
				delete(d.inodes, h.nodeid)
			}
		}
	}
	d.persistLocked()
}

func (d *daemon) registerLocked(fd int, rel string) (int32, error) {
	id, err := fuseabi.BackingOpen(d.dev, fd)
	if err != nil {
		d.log.Printf("BACKING_OPEN %s: %s", rel, unix.ErrnoName(errnoOf(err)))
		return 0, err
	}
	d.idsOpened++
	return id, nil
}

func (d *daemon) closeIDLocked(id int32) {
	if err := fuseabi.BackingClose(d.dev, id); err != nil {
		d.log.Printf("BACKING_CLOSE %d: %s", id, unix.ErrnoName(errnoOf(err)))
	}
}

// handleFD returns fh's backing fd, or -1.
func (d *daemon) handleFD(fh uint64) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if h, ok := d.handles[fh]; ok {
		return h.fd
	}
	return -1
}

// ioFD returns the fd READ and WRITE use for fh, opening nodeid's backing
// file when the handle came from a dead generation.
func (d *daemon) ioFD(fh, nodeid uint64) (int, fuse.Status) {
	if fd := d.handleFD(fh); fd >= 0 {
		return fd, fuse.OK
	}
	rel, s := d.pathOf(nodeid)
	if !s.Ok() {
		return -1, s
	}
	fd, err := unix.Open(d.abs(rel), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		fd, err = unix.Open(d.abs(rel), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return -1, fuse.ToStatus(err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if h, ok := d.handles[fh]; ok {
		if h.fd >= 0 { // another request got there first
			unix.Close(fd)
			return h.fd, fuse.OK
		}
		h.fd = fd
	} else {
		d.handles[fh] = &handle{nodeid: nodeid, fd: fd}
	}
	return fd, fuse.OK
}

// persistLocked writes the table for `--recovery adopt`. A crash between a
// BACKING_OPEN and this write leaks that one id.
func (d *daemon) persistLocked() {
	if d.cfg.Recovery != RecoveryAdopt {
		return
	}
	t := idTable{Token: d.lease.Token, Generation: d.lease.Generation}
	for nodeid, ent := range d.inodes {
		t.Inodes = append(t.Inodes, tableInode{NodeID: nodeid, ID: ent.id, Path: ent.path})
	}
	for fh, h := range d.handles {
		if h.shared || h.owned {
			t.Handles = append(t.Handles, tableHandle{Fh: fh, NodeID: h.nodeid, ID: h.id, Shared: h.shared})
		}
	}
	if err := writeJSONFile(filepath.Join(d.cfg.State, ctl.TableFileName), t); err != nil {
		d.log.Printf("persist backing-id table: %v", err)
	}
}

// adopt takes over the table a previous generation of the same connection
// persisted.
func (d *daemon) adopt() ctl.Recovery {
	r := ctl.Recovery{Strategy: RecoveryAdopt}
	p := filepath.Join(d.cfg.State, ctl.TableFileName)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		r.Detail = "no table to adopt"
		return r
	}
	var t idTable
	if err == nil {
		err = json.Unmarshal(b, &t)
	}
	if err != nil {
		r.Detail = fmt.Sprintf("table unreadable, nothing adopted: %v", err)
		return r
	}
	if t.Token != d.lease.Token {
		r.Detail = "table belongs to another connection, nothing adopted"
		return r
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, ti := range t.Inodes {
		d.inodes[ti.NodeID] = &inodeID{id: ti.ID, path: ti.Path, origin: "adopted"}
		d.paths[ti.NodeID] = ti.Path
		r.Adopted = append(r.Adopted, ti.ID)
	}
	for _, th := range t.Handles {
		h := &handle{nodeid: th.NodeID, fd: -1, id: th.ID, shared: th.Shared, owned: !th.Shared, adopted: true}
		if ent := d.inodes[th.NodeID]; th.Shared && ent != nil {
			ent.refs++
		} else if !th.Shared {
			r.Adopted = append(r.Adopted, th.ID)
		}
		d.handles[th.Fh] = h
	}
	for nodeid, ent := range d.inodes {
		if ent.refs == 0 { // cannot happen in a consistent table; do not keep it
			d.closeIDLocked(ent.id)
			delete(d.inodes, nodeid)
		}
	}
	slices.Sort(r.Adopted)
	r.Detail = fmt.Sprintf("adopted %d ids and %d handles of generation %d", len(r.Adopted), len(t.Handles), t.Generation)
	d.persistLocked()
	return r
}

// backingIDsLocked lists the ids this generation holds, for Status.
func (d *daemon) backingIDsLocked() []ctl.BackingID {
	out := []ctl.BackingID{}
	for nodeid, ent := range d.inodes {
		out = append(out, ctl.BackingID{ID: ent.id, Path: ent.path, NodeID: nodeid, Refs: ent.refs, Origin: ent.origin})
	}
	for _, h := range d.handles {
		if h.owned {
			origin := "open"
			if h.adopted {
				origin = "adopted"
			}
			out = append(out, ctl.BackingID{ID: h.id, Path: d.paths[h.nodeid], NodeID: h.nodeid, Refs: 1, Origin: origin})
		}
	}
	for id, p := range d.ctlIDs {
		out = append(out, ctl.BackingID{ID: id, Path: p, Origin: "ctl"})
	}
	slices.SortFunc(out, func(a, b ctl.BackingID) int { return int(a.ID) - int(b.ID) })
	return out
}

// errnoOf extracts the errno of a failed system call, or EIO.
func errnoOf(err error) unix.Errno {
	var e unix.Errno
	if errors.As(err, &e) {
		return e
	}
	return unix.EIO
}
