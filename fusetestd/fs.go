package fusetestd

import (
	"os"
	"path/filepath"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"fusevm/fuseabi"
)

// This file is the daemon's fuse.RawFileSystem: a mirror of the backing
// directory where nodeid = backing inode number (the backing root is
// FUSE_ROOT_ID), so that any generation can resolve any nodeid the kernel
// holds. Operations not listed answer ENOSYS through the embedded default.

// String names the filesystem.
func (d *daemon) String() string { return "fusetestd" }

func (d *daemon) abs(rel string) string { return filepath.Join(d.backing, rel) }

// nodeOf maps a backing file's stat to its nodeid.
func (d *daemon) nodeOf(st *syscall.Stat_t) (uint64, fuse.Status) {
	switch {
	case st.Dev != d.rootDev:
		return 0, fuse.Status(syscall.EXDEV) // another filesystem below the backing directory
	case st.Ino == d.rootIno:
		return fuseabi.RootID, fuse.OK
	case st.Ino == fuseabi.RootID:
		d.log.Printf("backing inode 1 is not the backing root: it cannot be served")
		return 0, fuse.EIO
	}
	return st.Ino, fuse.OK
}

// pathOf returns the backing path (relative) of nodeid. A nodeid issued by a
// dead generation is found by scanning the backing tree.
func (d *daemon) pathOf(nodeid uint64) (string, fuse.Status) {
	if nodeid == fuseabi.RootID {
		return "", fuse.OK
	}
	d.mu.Lock()
	p, ok := d.paths[nodeid]
	d.mu.Unlock()
	if ok {
		return p, fuse.OK
	}
	d.rescan()
	d.mu.Lock()
	p, ok = d.paths[nodeid]
	d.mu.Unlock()
	if !ok {
		return "", fuse.ENOENT
	}
	return p, fuse.OK
}

// rescan records the nodeid of every file in the backing tree.
func (d *daemon) rescan() {
	found := map[uint64]string{}
	filepath.WalkDir(d.backing, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		var st syscall.Stat_t
		if syscall.Lstat(p, &st) != nil {
			return nil
		}
		id, s := d.nodeOf(&st)
		if !s.Ok() {
			if e.IsDir() && p != d.backing {
				return filepath.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(d.backing, p)
		found[id] = filepath.ToSlash(rel)
		return nil
	})
	d.mu.Lock()
	for id, p := range found {
		d.paths[id] = p
	}
	d.mu.Unlock()
}

// entry stats rel and fills out, remembering the nodeid's path.
func (d *daemon) entry(rel string, out *fuse.EntryOut) fuse.Status {
	var st syscall.Stat_t
	if err := syscall.Lstat(d.abs(rel), &st); err != nil {
		return fuse.ToStatus(err)
	}
	id, s := d.nodeOf(&st)
	if !s.Ok() {
		return s
	}
	d.mu.Lock()
	d.paths[id] = rel
	d.mu.Unlock()
	out.NodeId = id
	out.Generation = 0
	out.Attr.FromStat(&st)
	out.Attr.Ino = id
	out.SetEntryTimeout(d.cfg.TTL)
	out.SetAttrTimeout(d.cfg.TTL)
	return fuse.OK
}

func (d *daemon) child(parent uint64, name string) (string, fuse.Status) {
	dir, s := d.pathOf(parent)
	if !s.Ok() {
		return "", s
	}
	return filepath.Join(dir, name), fuse.OK
}

// Lookup implements LOOKUP.
func (d *daemon) Lookup(_ <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	rel, s := d.child(h.NodeId, name)
	if !s.Ok() {
		return s
	}
	return d.entry(rel, out)
}

// GetAttr implements GETATTR, through the open handle when the kernel names
// one.
func (d *daemon) GetAttr(_ <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	var st syscall.Stat_t
	var err error
	fd := -1
	if in.Flags()&fuse.FUSE_GETATTR_FH != 0 {
		fd = d.handleFD(in.Fh())
	}
	if fd >= 0 {
		err = syscall.Fstat(fd, &st)
	} else {
		rel, s := d.pathOf(in.NodeId)
		if !s.Ok() {
			return s
		}
		err = syscall.Lstat(d.abs(rel), &st)
	}
	if err != nil {
		return fuse.ToStatus(err)
	}
	return d.attrOut(in.NodeId, &st, out)
}

// attrOut answers an attribute request for node with st.
func (d *daemon) attrOut(node uint64, st *syscall.Stat_t, out *fuse.AttrOut) fuse.Status {
	out.Attr.FromStat(st)
	out.Attr.Ino = node
	out.SetTimeout(d.cfg.TTL)
	return fuse.OK
}

// SetAttr implements SETATTR: size, mode, owner and times.
func (d *daemon) SetAttr(_ <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	rel, s := d.pathOf(in.NodeId)
	if !s.Ok() {
		return s
	}
	p := d.abs(rel)
	if size, ok := in.GetSize(); ok {
		if err := unix.Truncate(p, int64(size)); err != nil {
			return fuse.ToStatus(err)
		}
	}
	if mode, ok := in.GetMode(); ok {
		if err := unix.Chmod(p, mode&07777); err != nil {
			return fuse.ToStatus(err)
		}
	}
	uid, uok := in.GetUID()
	gid, gok := in.GetGID()
	if uok || gok {
		u, g := -1, -1
		if uok {
			u = int(uid)
		}
		if gok {
			g = int(gid)
		}
		if err := unix.Lchown(p, u, g); err != nil {
			return fuse.ToStatus(err)
		}
	}
	atime, aok := in.GetATime()
	mtime, mok := in.GetMTime()
	if aok || mok {
		ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
		if aok {
			ts[0] = unix.NsecToTimespec(atime.UnixNano())
		}
		if mok {
			ts[1] = unix.NsecToTimespec(mtime.UnixNano())
		}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fuse.ToStatus(err)
		}
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return fuse.ToStatus(err)
	}
	return d.attrOut(in.NodeId, &st, out)
}

// Open implements OPEN: the backing file is opened with the caller's flags
// and registered as the passthrough backing file (see openHandle).
func (d *daemon) Open(_ <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	rel, s := d.pathOf(in.NodeId)
	if !s.Ok() {
		return s
	}
	fd, err := unix.Open(d.abs(rel), int(in.Flags)&^(unix.O_CREAT|unix.O_EXCL|unix.O_NOCTTY)|unix.O_CLOEXEC, 0)
	if err != nil {
		return fuse.ToStatus(err)
	}
	return d.openHandle(in.NodeId, rel, fd, out)
}

// Create implements CREATE: create and open in one step.
func (d *daemon) Create(_ <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	rel, s := d.child(in.NodeId, name)
	if !s.Ok() {
		return s
	}
	fd, err := unix.Open(d.abs(rel), int(in.Flags)&^unix.O_NOCTTY|unix.O_CREAT|unix.O_CLOEXEC, in.Mode)
	if err != nil {
		return fuse.ToStatus(err)
	}
	if s := d.entry(rel, &out.EntryOut); !s.Ok() {
		unix.Close(fd)
		return s
	}
	return d.openHandle(out.NodeId, rel, fd, &out.OpenOut)
}

// Read implements READ, which the kernel sends only for files opened
// without passthrough.
func (d *daemon) Read(_ <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	fd, s := d.ioFD(in.Fh, in.NodeId)
	if !s.Ok() {
		return nil, s
	}
	n, err := unix.Pread(fd, buf[:min(len(buf), int(in.Size))], int64(in.Offset))
	if err != nil {
		return nil, fuse.ToStatus(err)
	}
	return fuse.ReadResultData(buf[:n]), fuse.OK
}

// Write implements WRITE, which the kernel sends only for files opened
// without passthrough.
func (d *daemon) Write(_ <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	fd, s := d.ioFD(in.Fh, in.NodeId)
	if !s.Ok() {
		return 0, s
	}
	n, err := unix.Pwrite(fd, data, int64(in.Offset))
	if err != nil {
		return 0, fuse.ToStatus(err)
	}
	return uint32(n), fuse.OK
}

// Flush implements FLUSH: nothing to do, the backing file has the data.
func (d *daemon) Flush(_ <-chan struct{}, _ *fuse.FlushIn) fuse.Status { return fuse.OK }

// Fsync implements FSYNC.
func (d *daemon) Fsync(_ <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	if fd := d.handleFD(in.Fh); fd >= 0 {
		return fuse.ToStatus(unix.Fsync(fd))
	}
	return fuse.OK
}

// Release implements RELEASE (see releaseHandle).
func (d *daemon) Release(_ <-chan struct{}, in *fuse.ReleaseIn) { d.releaseHandle(in.Fh) }

// Unlink implements UNLINK.
func (d *daemon) Unlink(_ <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	return d.remove(h.NodeId, name, unix.Unlink)
}

// Rmdir implements RMDIR.
func (d *daemon) Rmdir(_ <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	return d.remove(h.NodeId, name, unix.Rmdir)
}

func (d *daemon) remove(parent uint64, name string, rm func(string) error) fuse.Status {
	rel, s := d.child(parent, name)
	if !s.Ok() {
		return s
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(d.abs(rel), &st); err != nil {
		return fuse.ToStatus(err)
	}
	if err := rm(d.abs(rel)); err != nil {
		return fuse.ToStatus(err)
	}
	if id, s := d.nodeOf(&st); s.Ok() {
		d.mu.Lock()
		if d.paths[id] == rel {
			delete(d.paths, id)
		}
		d.mu.Unlock()
	}
	return fuse.OK
}

// Mkdir implements MKDIR.
func (d *daemon) Mkdir(_ <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	rel, s := d.child(in.NodeId, name)
	if !s.Ok() {
		return s
	}
	if err := unix.Mkdir(d.abs(rel), in.Mode); err != nil {
		return fuse.ToStatus(err)
	}
	return d.entry(rel, out)
}

// OpenDir implements OPENDIR: the listing is read once, here.
func (d *daemon) OpenDir(_ <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	rel, s := d.pathOf(in.NodeId)
	if !s.Ok() {
		return s
	}
	ents, err := os.ReadDir(d.abs(rel))
	if err != nil {
		return fuse.ToStatus(err)
	}
	var list []fuse.DirEntry
	for _, e := range ents {
		var st syscall.Stat_t
		if syscall.Lstat(d.abs(filepath.Join(rel, e.Name())), &st) != nil {
			continue
		}
		if id, s := d.nodeOf(&st); s.Ok() {
			list = append(list, fuse.DirEntry{Name: e.Name(), Mode: st.Mode, Ino: id})
		}
	}
	d.mu.Lock()
	fh := d.newFhLocked()
	d.dirs[fh] = list
	d.mu.Unlock()
	out.Fh = fh
	return fuse.OK
}

// ReadDir implements READDIR from the listing OpenDir took.
func (d *daemon) ReadDir(_ <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	d.mu.Lock()
	list, ok := d.dirs[in.Fh]
	d.mu.Unlock()
	if !ok {
		// A listing opened by a dead generation: read it afresh.
		var s fuse.Status
		var oo fuse.OpenOut
		if s = d.OpenDir(nil, &fuse.OpenIn{InHeader: in.InHeader}, &oo); !s.Ok() {
			return s
		}
		d.mu.Lock()
		list = d.dirs[oo.Fh]
		delete(d.dirs, oo.Fh)
		d.dirs[in.Fh] = list
		d.mu.Unlock()
	}
	for i := int(in.Offset); i < len(list); i++ {
		if !out.AddDirEntry(list[i]) {
			break
		}
	}
	return fuse.OK
}

// ReleaseDir implements RELEASEDIR.
func (d *daemon) ReleaseDir(in *fuse.ReleaseIn) {
	d.mu.Lock()
	delete(d.dirs, in.Fh)
	d.mu.Unlock()
}

// StatFs implements STATFS with the backing filesystem's numbers.
func (d *daemon) StatFs(_ <-chan struct{}, _ *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	var st unix.Statfs_t
	if err := unix.Statfs(d.backing, &st); err != nil {
		return fuse.ToStatus(err)
	}
	*out = fuse.StatfsOut{
		Blocks: st.Blocks, Bfree: st.Bfree, Bavail: st.Bavail,
		Files: st.Files, Ffree: st.Ffree,
		Bsize: uint32(st.Bsize), NameLen: uint32(st.Namelen), Frsize: uint32(st.Frsize),
	}
	return fuse.OK
}
