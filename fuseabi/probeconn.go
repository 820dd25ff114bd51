package fuseabi

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// probeConn is a private, throwaway FUSE mount served by a minimal
// in-process server: a root directory holding one regular file "f" (nodeid
// 2) whose OPEN replies the probe chooses. It exists so that the v1 probes
// can use a live connection with passthrough negotiated without touching
// anyone else's.
type probeConn struct {
	dev     int
	dir     string
	backing int // a memfd: any regular file below the stack limit will do

	mu        sync.Mutex
	openFlags uint32
	openID    int32

	offered  bool      // the kernel offered FUSE_PASSTHROUGH at INIT
	initDone chan bool // receives offered once the INIT reply is written
	stop     chan struct{}
	done     chan struct{}
}

// probeDeadline bounds a probe: past it the server aborts the connection so
// that nothing in the probe can hang.
const probeDeadline = 5 * time.Second

const probeFileNodeID = 2

// withProbeConn mounts a probe connection, waits for INIT, runs fn and tears
// everything down. It returns errNoPassthrough (an ErrNotSupported) when
// the kernel does not offer FUSE passthrough at all.
func withProbeConn(fn func(*probeConn) error) (err error) {
	dev, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: "/dev/fuse", Err: err}
	}
	pc := &probeConn{dev: dev, initDone: make(chan bool, 1), stop: make(chan struct{}), done: make(chan struct{})}
	pc.dir, err = os.MkdirTemp("", "fuseabi-probe-")
	if err != nil {
		unix.Close(dev)
		return err
	}
	defer os.Remove(pc.dir)
	pc.backing, err = unix.MemfdCreate("fuseabi-probe", unix.MFD_CLOEXEC)
	if err != nil {
		unix.Close(dev)
		return fmt.Errorf("memfd_create: %w", err)
	}
	defer unix.Close(pc.backing)
	opts := fmt.Sprintf("fd=%d,rootmode=40000,user_id=0,group_id=0", dev)
	if err := unix.Mount("fuseabi-probe", pc.dir, "fuse.fuseabi-probe", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		unix.Close(dev)
		return fmt.Errorf("mount probe FUSE filesystem: %w", err)
	}
	go pc.serve() // owns dev from here on: unmounts and closes it
	defer func() {
		close(pc.stop)
		<-pc.done
	}()
	select {
	case passthrough := <-pc.initDone:
		if !passthrough {
			return errNoPassthrough
		}
	case <-pc.done:
		return errors.New("probe FUSE connection ended before INIT")
	}
	return fn(pc)
}

// register registers the probe's backing file and returns the new id.
func (pc *probeConn) register() (int32, error) {
	id, err := BackingOpen(pc.dev, pc.backing)
	if err != nil {
		return 0, fmt.Errorf("register probe backing file: %w", err)
	}
	return id, nil
}

// setOpenReply sets what the next OPENs of the probe file are answered with.
func (pc *probeConn) setOpenReply(flags uint32, id int32) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	pc.openFlags, pc.openID = flags, id
}

// openFile opens the probe file read-only through the mount.
func (pc *probeConn) openFile() (int, error) {
	for {
		fd, err := unix.Open(filepath.Join(pc.dir, "f"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

func (pc *probeConn) serve() {
	defer close(pc.done)
	defer func() {
		// Closing the only /dev/fuse fd ends the connection: whatever
		// still waits on it fails with ENOTCONN.
		unix.Unmount(pc.dir, unix.MNT_DETACH)
		unix.Close(pc.dev)
	}()
	deadline := time.Now().Add(probeDeadline)
	buf := make([]byte, 128*1024+MinReadBuffer)
	for time.Now().Before(deadline) {
		select {
		case <-pc.stop:
			return
		default:
		}
		fds := []unix.PollFd{{Fd: int32(pc.dev), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, 20); err != nil && err != unix.EINTR {
			return
		}
		n, err := unix.Read(pc.dev, buf)
		switch err {
		case nil:
		case unix.EAGAIN, unix.EINTR, unix.ENOENT:
			continue
		default:
			return
		}
		reply := pc.answer(buf[:n])
		if reply == nil {
			continue
		}
		unix.Write(pc.dev, reply)
		if h, _ := ParseInHeader(buf[:n]); h.Opcode == OpInit {
			pc.initDone <- pc.offered
		}
	}
}

// answer returns the reply to one request, or nil for requests that take
// none.
func (pc *probeConn) answer(req []byte) []byte {
	h, err := ParseInHeader(req)
	if err != nil {
		return nil
	}
	switch h.Opcode {
	case OpInit:
		var in fuse.InitIn
		copy(raw(&in), req)
		flags := uint64(in.Flags)
		if flags&InitExt != 0 {
			flags = in.Flags64()
		}
		pc.offered = flags&InitPassthrough != 0
		return reply(h.Unique, 0, raw(&fuse.InitOut{
			Major:               in.Major,
			Minor:               in.Minor,
			Flags:               InitExt,
			Flags2:              uint32(InitPassthrough >> 32),
			MaxBackground:       1,
			CongestionThreshold: 1,
			MaxWrite:            4096,
			TimeGran:            1,
			MaxStackDepth:       1,
		}))
	case OpLookup:
		name, _, _ := bytes.Cut(req[InHeaderSize:], []byte{0})
		if h.NodeID != RootID || string(name) != "f" {
			return reply(h.Unique, unix.ENOENT, nil)
		}
		return reply(h.Unique, 0, raw(&fuse.EntryOut{
			NodeId:     probeFileNodeID,
			EntryValid: 1,
			AttrValid:  1,
			Attr:       probeAttr(probeFileNodeID),
		}))
	case OpGetattr:
		return reply(h.Unique, 0, raw(&fuse.AttrOut{Attr: probeAttr(h.NodeID)}))
	case OpOpen:
		if h.NodeID != probeFileNodeID {
			return reply(h.Unique, unix.EISDIR, nil)
		}
		pc.mu.Lock()
		flags, id := pc.openFlags, pc.openID
		pc.mu.Unlock()
		return reply(h.Unique, 0, raw(&fuse.OpenOut{Fh: 1, OpenFlags: flags, BackingID: id}))
	case OpFlush, OpRelease:
		return reply(h.Unique, 0, nil)
	case OpForget, OpBatchForget, OpInterrupt:
		return nil
	default:
		return reply(h.Unique, unix.ENOSYS, nil)
	}
}

// probeAttr returns the attributes of the probe's root (RootID) or file.
func probeAttr(nodeid uint64) fuse.Attr {
	if nodeid == RootID {
		return fuse.Attr{Ino: nodeid, Mode: unix.S_IFDIR | 0o555, Nlink: 2}
	}
	return fuse.Attr{Ino: nodeid, Mode: unix.S_IFREG | 0o444, Nlink: 1}
}

// reply encodes a reply: errno 0 and the payload, or a negated errno alone.
func reply(unique uint64, errno unix.Errno, payload []byte) []byte {
	b := AppendOutHeader(nil, uint32(OutHeaderSize+len(payload)), -int32(errno), unique)
	return append(b, payload...)
}
