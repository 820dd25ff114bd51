package fuseabi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

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
// everything down. It returns ErrNotSupported when the kernel does not offer
// FUSE passthrough at all.
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
			return fmt.Errorf("FUSE passthrough: %w", ErrNotSupported)
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
	body := req[InHeaderSize:]
	e := binary.NativeEndian
	switch h.Opcode {
	case OpInit:
		if len(body) < 20 {
			return reply(h.Unique, unix.EIO, nil)
		}
		major, minor := e.Uint32(body[0:]), e.Uint32(body[4:])
		flags := uint64(e.Uint32(body[12:]))
		if flags&InitExt != 0 {
			flags |= uint64(e.Uint32(body[16:])) << 32
		}
		pc.offered = flags&InitPassthrough != 0
		var out []byte
		out = e.AppendUint32(out, major)
		out = e.AppendUint32(out, minor)
		out = e.AppendUint32(out, 0)                           // max_readahead
		out = e.AppendUint32(out, uint32(InitExt))             // flags
		out = e.AppendUint16(out, 1)                           // max_background
		out = e.AppendUint16(out, 1)                           // congestion_threshold
		out = e.AppendUint32(out, 4096)                        // max_write
		out = e.AppendUint32(out, 1)                           // time_gran
		out = e.AppendUint16(out, 0)                           // max_pages
		out = e.AppendUint16(out, 0)                           // map_alignment
		out = e.AppendUint32(out, uint32(InitPassthrough>>32)) // flags2
		out = e.AppendUint32(out, 1)                           // max_stack_depth
		out = append(out, make([]byte, 24)...)                 // request_timeout, unused
		return reply(h.Unique, 0, out)
	case OpLookup:
		if h.NodeID != RootID || string(trimNul(body)) != "f" {
			return reply(h.Unique, unix.ENOENT, nil)
		}
		var out []byte
		out = e.AppendUint64(out, probeFileNodeID)
		out = e.AppendUint64(out, 0)          // generation
		out = e.AppendUint64(out, 1)          // entry_valid
		out = e.AppendUint64(out, 1)          // attr_valid
		out = append(out, make([]byte, 8)...) // the _nsec fields
		return reply(h.Unique, 0, appendAttr(out, probeFileNodeID))
	case OpGetattr:
		out := make([]byte, 16) // attr_valid, attr_valid_nsec, dummy
		return reply(h.Unique, 0, appendAttr(out, h.NodeID))
	case OpOpen:
		if h.NodeID != probeFileNodeID {
			return reply(h.Unique, unix.EISDIR, nil)
		}
		pc.mu.Lock()
		flags, id := pc.openFlags, pc.openID
		pc.mu.Unlock()
		var out []byte
		out = e.AppendUint64(out, 1) // fh
		out = e.AppendUint32(out, flags)
		out = e.AppendUint32(out, uint32(id))
		return reply(h.Unique, 0, out)
	case OpFlush, OpRelease:
		return reply(h.Unique, 0, nil)
	case OpForget, OpBatchForget, OpInterrupt:
		return nil
	default:
		return reply(h.Unique, unix.ENOSYS, nil)
	}
}

// appendAttr appends the struct fuse_attr of the probe's root (nodeid 1)
// or file.
func appendAttr(b []byte, nodeid uint64) []byte {
	e := binary.NativeEndian
	mode, nlink := uint32(unix.S_IFREG|0o444), uint32(1)
	if nodeid == RootID {
		mode, nlink = unix.S_IFDIR|0o555, 2
	}
	b = e.AppendUint64(b, nodeid)           // ino
	b = append(b, make([]byte, 5*8+3*4)...) // size, blocks, times
	b = e.AppendUint32(b, mode)
	b = e.AppendUint32(b, nlink)
	return append(b, make([]byte, 5*4)...) // uid, gid, rdev, blksize, flags
}

func reply(unique uint64, errno unix.Errno, payload []byte) []byte {
	if errno != 0 {
		payload = nil
	}
	b := AppendOutHeader(nil, uint32(OutHeaderSize+len(payload)), -int32(errno), unique)
	return append(b, payload...)
}

func trimNul(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}
