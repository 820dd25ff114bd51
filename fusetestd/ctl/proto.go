package ctl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"syscall"
)

// Socket and file names inside a state directory.
const (
	KeeperSocketName = "keeper.sock"
	DaemonSocketName = "daemon.sock"
	// KeeperFileName holds KeeperInfo as JSON, written when the keeper is
	// ready; it survives a killed keeper, so cleanup can find the mount.
	KeeperFileName = "keeper.json"
	// InitFileName holds the raw FUSE_INIT request the keeper saved.
	InitFileName = "init.bin"
	// TableFileName holds the backing-id table that `--recovery adopt`
	// persists and adopts.
	TableFileName = "backing-ids.json"
)

// KeeperSocket returns the keeper socket path of state directory state.
func KeeperSocket(state string) string { return filepath.Join(state, KeeperSocketName) }

// DaemonSocket returns the daemon control socket path of state directory
// state.
func DaemonSocket(state string) string { return filepath.Join(state, DaemonSocketName) }

// Keeper socket operations.
const (
	// OpTakeover asks for the connection: the response carries a Handover
	// and the /dev/fuse fd. The requesting socket then stands for the
	// daemon generation: while it is open no other takeover is granted.
	// While a generation holds the connection, the keeper waits a second
	// for it to end (a SIGKILLed process closes its socket a moment after
	// kill returns), or for as long as it takes with Wait.
	OpTakeover = "takeover"
	// OpInitAnswered, sent on the takeover socket, tells the keeper that
	// this generation wrote the FUSE_INIT reply.
	OpInitAnswered = "init-answered"
	// OpDevFD asks for a duplicate of the /dev/fuse fd, for callers that
	// issue ioctls themselves. It does not count as a takeover.
	OpDevFD = "dev-fd"
	// OpUmount tears the mount and the connection down; the keeper answers
	// once done, then exits.
	OpUmount = "umount"
)

// Daemon control socket operations.
const (
	// OpStatus (both sockets) reports Status (daemon) or KeeperStatus.
	OpStatus = "status"
	// OpNextOpenID makes the next OPEN of Path answer FOPEN_PASSTHROUGH
	// with backing id ID instead of the daemon's own; one-shot.
	OpNextOpenID = "next-open-id"
	// OpHold makes the daemon read requests of Opcode and leave them
	// unanswered until OpReleaseHeld.
	OpHold = "hold"
	// OpReleaseHeld stops holding Opcode (every opcode if empty) and
	// answers the requests held so far; Count tells how many.
	OpReleaseHeld = "release-held"
	// OpBackingOpen registers the backing file at Path on the daemon's
	// /dev/fuse fd; ID is the new backing id.
	OpBackingOpen = "backing-open"
	// OpBackingClose issues BACKING_CLOSE(ID); Errno tells the kernel's
	// answer.
	OpBackingClose = "backing-close"
)

// Request is one line sent on either socket. Fields other than Op are
// per-operation arguments.
type Request struct {
	Op string `json:"op"`
	// Path is relative to the mount root, which is the same as relative to
	// the backing directory ("a.txt", "dir/b").
	Path string `json:"path,omitempty"`
	ID   int32  `json:"id,omitempty"`
	// Opcode is a FUSE opcode name ("LOOKUP"), as fuseabi.ParseOpcode
	// accepts it.
	Opcode string `json:"opcode,omitempty"`
	// Wait: OpTakeover waits until the holding generation ends.
	Wait bool `json:"wait,omitempty"`
}

// Response is one line answering a Request.
type Response struct {
	OK bool `json:"ok"`
	// Error says why OK is false.
	Error string `json:"error,omitempty"`
	// Errno is the kernel's answer to an ioctl, by name ("ENOENT"); empty
	// for success.
	Errno    string        `json:"errno,omitempty"`
	ID       int32         `json:"id,omitempty"`
	Count    int           `json:"count,omitempty"`
	Status   *Status       `json:"status,omitempty"`
	Keeper   *KeeperStatus `json:"keeper,omitempty"`
	Handover *Handover     `json:"handover,omitempty"`
}

// Status is what the serving daemon generation reports.
type Status struct {
	Generation int  `json:"generation"`
	PID        int  `json:"pid"`
	Serving    bool `json:"serving"`
	// Passthrough: FUSE_PASSTHROUGH was negotiated at INIT.
	Passthrough bool `json:"passthrough"`
	// PlainIO: this generation answers opens without passthrough and
	// serves READ/WRITE itself (not negotiated, or --no-passthrough).
	PlainIO bool `json:"plain_io"`
	// IDPolicy is "per-inode" or "per-open".
	IDPolicy string `json:"id_policy"`
	// InodeCacheFlag is the open flag set with every passthrough open
	// (--inode-cache), 0 when off.
	InodeCacheFlag uint32 `json:"inode_cache_flag"`
	// BackingIDs lists the ids this generation holds registered, by id.
	BackingIDs []BackingID `json:"backing_ids"`
	// IDsOpened counts every BACKING_OPEN this generation made.
	IDsOpened int      `json:"ids_opened"`
	Recovery  Recovery `json:"recovery"`
	// ResendErrno is the kernel's answer to FUSE_NOTIFY_RESEND ("" for
	// success, "-" when not sent: this generation answered INIT itself).
	ResendErrno string `json:"resend_errno"`
	// Served counts the requests answered (or, for FORGET, consumed), by
	// opcode name; a request is counted before its reply is written, so
	// whoever has the reply finds it counted.
	Served map[string]uint64 `json:"served"`
	// Held counts the requests read and held unanswered, by opcode name.
	Held map[string]int `json:"held"`
	// Holding lists the opcodes being held.
	Holding []string `json:"holding"`
	// UnknownReleases counts RELEASEs of handles this generation does not
	// know (opened by a dead generation): answered and ignored.
	UnknownReleases int `json:"unknown_releases"`
}

// BackingID is one backing id held by the daemon.
type BackingID struct {
	ID     int32  `json:"id"`
	Path   string `json:"path"`
	NodeID uint64 `json:"nodeid,omitempty"`
	// Refs counts the open handles using the id.
	Refs int `json:"refs"`
	// Origin is "open" (registered on OPEN or CREATE), "adopted" (taken
	// over from the previous generation's table) or "ctl" (OpBackingOpen).
	Origin string `json:"origin"`
}

// Recovery is what the generation's recovery strategy did at takeover,
// before serving.
type Recovery struct {
	// Strategy is none, close-all, close-minus-one, scan-close or adopt.
	Strategy string `json:"strategy"`
	// Errno is the kernel's answer to the strategy's ioctl ("" for
	// success), e.g. ENOTTY for close-all on a kernel without it.
	Errno  string `json:"errno"`
	Detail string `json:"detail"`
	// Closed lists the ids closed (scan-close).
	Closed []int32 `json:"closed,omitempty"`
	// Adopted lists the ids taken over (adopt).
	Adopted []int32 `json:"adopted,omitempty"`
}

// KeeperStatus is what the keeper reports.
type KeeperStatus struct {
	KeeperInfo
	// Generations counts the takeovers granted so far.
	Generations int `json:"generations"`
	// DaemonPID is the pid of the generation holding the connection, 0
	// when none does.
	DaemonPID    int  `json:"daemon_pid"`
	InitAnswered bool `json:"init_answered"`
	// Goroutines and FDs are the keeper's own, for leak checks.
	Goroutines int `json:"goroutines"`
	FDs        int `json:"fds"`
}

// KeeperInfo describes a keeper and its mount; it is also KeeperFileName's
// content.
type KeeperInfo struct {
	PID        int    `json:"pid"`
	Mountpoint string `json:"mountpoint"`
	// Conn is the connection number, the fusectl directory name.
	Conn          uint32 `json:"conn"`
	NoPassthrough bool   `json:"no_passthrough"`
}

// Handover is what a daemon generation gets with the /dev/fuse fd.
type Handover struct {
	Generation int `json:"generation"`
	// Init is the raw FUSE_INIT request read right after the mount.
	Init []byte `json:"init"`
	// InitAnswered: a previous generation wrote the INIT reply, so this
	// one replays Init and discards its reply.
	InitAnswered  bool   `json:"init_answered"`
	NoPassthrough bool   `json:"no_passthrough"`
	Conn          uint32 `json:"conn"`
	Mountpoint    string `json:"mountpoint"`
	// Token is random per mount: state saved by one connection's daemons
	// is not adopted on another.
	Token string `json:"token"`
}

// LineConn reads and writes JSON lines with SCM_RIGHTS on a UNIX stream
// socket. Both sides of both sockets use it.
type LineConn struct {
	*net.UnixConn
	pending []byte
}

// NewLineConn wraps c.
func NewLineConn(c *net.UnixConn) *LineConn { return &LineConn{UnixConn: c} }

// Send writes v as one JSON line, with fds attached when given.
func (c *LineConn) Send(v any, fds ...int) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	var oob []byte
	if len(fds) > 0 {
		oob = syscall.UnixRights(fds...)
	}
	n, _, err := c.WriteMsgUnix(b, oob, nil)
	if err == nil && n < len(b) {
		_, err = c.Write(b[n:])
	}
	return err
}

// Receive reads one JSON line into v and returns the fds that came with it.
func (c *LineConn) Receive(v any) ([]int, error) {
	var fds []int
	buf := make([]byte, 64*1024)
	oob := make([]byte, syscall.CmsgSpace(4*4))
	for {
		if i := bytes.IndexByte(c.pending, '\n'); i >= 0 {
			line := c.pending[:i]
			c.pending = c.pending[i+1:]
			if err := json.Unmarshal(line, v); err != nil {
				closeAll(fds)
				return nil, fmt.Errorf("bad message %q: %w", line, err)
			}
			return fds, nil
		}
		n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		if oobn > 0 {
			got, perr := parseRights(oob[:oobn])
			fds = append(fds, got...)
			if perr != nil {
				closeAll(fds)
				return nil, perr
			}
		}
		if err != nil {
			closeAll(fds)
			return nil, err
		}
		c.pending = append(c.pending, buf[:n]...)
		if n == 0 {
			closeAll(fds)
			return nil, errors.New("connection closed")
		}
	}
}

func parseRights(oob []byte) ([]int, error) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, m := range msgs {
		got, err := syscall.ParseUnixRights(&m)
		if err != nil {
			return fds, err
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		syscall.Close(fd)
	}
}
