package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// dial connects to the UNIX socket at path; what names the other side in
// error messages ("keeper", "daemon").
func dial(path, what string) (*LineConn, error) {
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	switch {
	case err == nil:
		return NewLineConn(c), nil
	case errors.Is(err, syscall.ENOENT):
		return nil, fmt.Errorf("no %s: %s does not exist", what, path)
	case errors.Is(err, syscall.ECONNREFUSED):
		return nil, fmt.Errorf("no %s: stale socket %s (nothing listens on it)", what, path)
	default:
		return nil, fmt.Errorf("no %s: %w", what, err)
	}
}

func call(c *LineConn, req Request) (Response, []int, error) {
	if err := c.Send(req); err != nil {
		return Response{}, nil, fmt.Errorf("%s: %w", req.Op, err)
	}
	var resp Response
	fds, err := c.Receive(&resp)
	if err != nil {
		return Response{}, nil, fmt.Errorf("%s: %w", req.Op, err)
	}
	if !resp.OK {
		closeAll(fds)
		return resp, nil, fmt.Errorf("%s: %s", req.Op, resp.Error)
	}
	return resp, fds, nil
}

// callOnce dials path, sends one request and closes.
func callOnce(path, what string, req Request) (Response, []int, error) {
	c, err := dial(path, what)
	if err != nil {
		return Response{}, nil, err
	}
	defer c.Close()
	return call(c, req)
}

// Client talks to a daemon generation's control socket.
type Client struct {
	c *LineConn
}

// Dial connects to the control socket of the daemon serving state.
func Dial(state string) (*Client, error) {
	c, err := dial(DaemonSocket(state), "daemon")
	if err != nil {
		return nil, err
	}
	return &Client{c: c}, nil
}

// Close closes the connection.
func (cl *Client) Close() error { return cl.c.Close() }

func (cl *Client) call(req Request) (Response, error) {
	resp, fds, err := call(cl.c, req)
	closeAll(fds)
	return resp, err
}

// Status returns the generation's status.
func (cl *Client) Status() (Status, error) {
	resp, err := cl.call(Request{Op: OpStatus})
	if err != nil {
		return Status{}, err
	}
	if resp.Status == nil {
		return Status{}, errors.New("status: empty answer")
	}
	return *resp.Status, nil
}

// NextOpenID makes the next OPEN of path (relative to the mount root) answer
// FOPEN_PASSTHROUGH with backing id id, live, stale or foreign.
func (cl *Client) NextOpenID(path string, id int32) error {
	_, err := cl.call(Request{Op: OpNextOpenID, Path: path, ID: id})
	return err
}

// Hold makes the daemon read requests of opcode (a name such as "LOOKUP")
// and leave them unanswered.
func (cl *Client) Hold(opcode string) error {
	_, err := cl.call(Request{Op: OpHold, Opcode: opcode})
	return err
}

// ReleaseHeld stops holding opcode ("" for all) and answers what was held;
// it returns how many requests that was.
func (cl *Client) ReleaseHeld(opcode string) (int, error) {
	resp, err := cl.call(Request{Op: OpReleaseHeld, Opcode: opcode})
	return resp.Count, err
}

// BackingOpen registers the backing file at path (relative to the backing
// directory) on the daemon's /dev/fuse fd. It returns the new id, or the
// kernel's refusal by errno name with id 0.
func (cl *Client) BackingOpen(path string) (id int32, errno string, err error) {
	resp, err := cl.call(Request{Op: OpBackingOpen, Path: path})
	return resp.ID, resp.Errno, err
}

// BackingClose issues BACKING_CLOSE(id) on the daemon's /dev/fuse fd and
// returns the kernel's answer by errno name ("" for success).
func (cl *Client) BackingClose(id int32) (errno string, err error) {
	resp, err := cl.call(Request{Op: OpBackingClose, ID: id})
	return resp.Errno, err
}

// WaitServing polls the control socket of state until a generation of at
// least gen reports serving, or ctx ends.
func WaitServing(ctx context.Context, state string, gen int) (Status, error) {
	var last error
	for {
		if cl, err := Dial(state); err != nil {
			last = err
		} else {
			st, err := cl.Status()
			cl.Close()
			if err == nil && st.Serving && st.Generation >= gen {
				return st, nil
			}
			last = err
			if err == nil {
				last = fmt.Errorf("generation %d serving=%v", st.Generation, st.Serving)
			}
		}
		select {
		case <-ctx.Done():
			return Status{}, fmt.Errorf("waiting for generation %d to serve: %w (last: %v)", gen, ctx.Err(), last)
		case <-time.After(time.Millisecond):
		}
	}
}

// KeeperStatusOf asks the keeper of state for its status.
func KeeperStatusOf(state string) (KeeperStatus, error) {
	resp, _, err := callOnce(KeeperSocket(state), "keeper", Request{Op: OpStatus})
	if err != nil {
		return KeeperStatus{}, err
	}
	if resp.Keeper == nil {
		return KeeperStatus{}, errors.New("status: empty answer")
	}
	return *resp.Keeper, nil
}

// DevFuseFD returns a duplicate of the connection's /dev/fuse fd, received
// from the keeper of state, for calling the backing ioctls directly (see
// fuseabi). The caller owns and must close it: the connection is freed only
// when the last such fd is closed.
func DevFuseFD(state string) (int, error) {
	_, fds, err := callOnce(KeeperSocket(state), "keeper", Request{Op: OpDevFD})
	if err != nil {
		return -1, err
	}
	if len(fds) != 1 {
		closeAll(fds)
		return -1, fmt.Errorf("dev-fd: got %d fds, want 1", len(fds))
	}
	return fds[0], nil
}

// Umount asks the keeper of state to unmount and end the connection, and
// waits until it has.
func Umount(state string) error {
	_, _, err := callOnce(KeeperSocket(state), "keeper", Request{Op: OpUmount})
	return err
}

// ReadKeeperInfo reads the KeeperInfo a keeper left in state; it is there
// even after the keeper died.
func ReadKeeperInfo(state string) (KeeperInfo, error) {
	var ki KeeperInfo
	b, err := os.ReadFile(filepath.Join(state, KeeperFileName))
	if err != nil {
		return ki, err
	}
	if err := json.Unmarshal(b, &ki); err != nil {
		return ki, fmt.Errorf("%s: %w", filepath.Join(state, KeeperFileName), err)
	}
	return ki, nil
}

// Lease is a daemon generation's hold on the connection, granted by the
// keeper. Its socket stays open for the generation's whole life: the keeper
// sees the generation die when it closes.
type Lease struct {
	Handover
	// DevFD is the generation's /dev/fuse fd.
	DevFD int
	c     *LineConn
}

// TakeOver asks the keeper of state for the connection; with wait, it
// waits for as long as another generation holds it. queued, if set, runs
// once the request is sent.
func TakeOver(state string, wait bool, queued func()) (*Lease, error) {
	c, err := dial(KeeperSocket(state), "keeper")
	if err != nil {
		return nil, err
	}
	if err := c.Send(Request{Op: OpTakeover, Wait: wait}); err != nil {
		c.Close()
		return nil, fmt.Errorf("%s: %w", OpTakeover, err)
	}
	if queued != nil {
		queued()
	}
	var resp Response
	fds, err := c.Receive(&resp)
	if err == nil && !resp.OK {
		closeAll(fds)
		fds, err = nil, fmt.Errorf("%s: %s", OpTakeover, resp.Error)
	}
	if err == nil && (resp.Handover == nil || len(fds) != 1) {
		closeAll(fds)
		err = errors.New("takeover: answer without handover or fd")
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return &Lease{Handover: *resp.Handover, DevFD: fds[0], c: c}, nil
}

// ReportInitAnswered tells the keeper that this generation wrote the INIT reply.
func (l *Lease) ReportInitAnswered() error {
	_, _, err := call(l.c, Request{Op: OpInitAnswered})
	return err
}
