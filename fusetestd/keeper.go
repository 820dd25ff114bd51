package fusetestd

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"fusevm/fuseabi"
	"fusevm/fusetestd/ctl"
	"fusevm/internal/atomicfile"
)

// KeeperConfig is what `fusetestd keeper` takes.
type KeeperConfig struct {
	Mountpoint string
	State      string
	// NoPassthrough makes every generation answer INIT without
	// FUSE_PASSTHROUGH.
	NoPassthrough bool
	// Options are extra FUSE mount options ("allow_other,default_permissions").
	Options string
	// Subtype names the filesystem: fstype fuse.<Subtype>.
	Subtype string
	// Ready, if set, receives one line once the keeper serves its socket.
	Ready io.Writer
	// Log receives the keeper's log; nil discards it.
	Log *log.Logger
}

// takeoverGrace is how long a takeover waits for the previous generation's
// socket to close: a SIGKILLed process closes it while exiting, a moment
// after kill(2) returns.
const takeoverGrace = time.Second

type keeper struct {
	cfg   KeeperConfig
	dev   int
	info  ctl.KeeperInfo
	init  []byte
	token string
	log   *log.Logger

	mu           sync.Mutex
	generations  int
	initAnswered bool
	holderPID    int
	holderGone   chan struct{} // closed when the holder's socket closes; nil without holder

	stop     chan stopOrder
	stopOnce sync.Once
}

// stopOrder asks RunKeeper to tear down. An umount order waits for the
// outcome on done and confirms on sent that it has passed it on.
type stopOrder struct {
	why  string
	done chan error
	sent chan struct{}
}

// RunKeeper mounts cfg.Mountpoint, holds the connection and serves the
// keeper socket until SIGTERM, SIGINT or an umount order, then tears the
// mount and the connection down.
func RunKeeper(cfg KeeperConfig) error {
	if cfg.Subtype == "" {
		cfg.Subtype = "fusetestd"
	}
	if cfg.Log == nil {
		cfg.Log = log.New(io.Discard, "", 0)
	}
	mnt, err := filepath.Abs(cfg.Mountpoint)
	if err != nil {
		return err
	}
	// Mount table first: a stat of a FUSE mount whose INIT is unanswered
	// would block.
	if busy, err := fuseabi.IsMountpoint(mnt); err != nil {
		return err
	} else if busy {
		return fmt.Errorf("mountpoint busy: %s is already a mount point", mnt)
	}
	if fi, err := os.Stat(mnt); err != nil {
		return fmt.Errorf("mountpoint: %w", err)
	} else if !fi.IsDir() {
		return fmt.Errorf("mountpoint %s is not a directory", mnt)
	}
	if err := os.MkdirAll(cfg.State, 0o755); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	unlock, err := lockState(cfg.State)
	if err != nil {
		return err
	}
	defer unlock()

	k := &keeper{cfg: cfg, log: cfg.Log, stop: make(chan stopOrder, 1)}
	k.token, err = randomToken()
	if err != nil {
		return err
	}
	k.dev, err = unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("no /dev/fuse: %w", err)
	}
	defer unix.Close(k.dev)
	opts := fmt.Sprintf("fd=%d,rootmode=40000,user_id=0,group_id=0", k.dev)
	if cfg.Options != "" {
		opts += "," + cfg.Options
	}
	if err := unix.Mount("fusetestd", mnt, "fuse."+cfg.Subtype, unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("mount %s: %w (needs CAP_SYS_ADMIN)", mnt, err)
		}
		return fmt.Errorf("mount %s: %w", mnt, err)
	}
	mounted := true
	defer func() {
		if mounted { // a failure before serving: leave no mount behind
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
	}()
	conn, err := fuseabi.MountConn(mnt)
	if err != nil {
		return err
	}
	k.info = ctl.KeeperInfo{PID: os.Getpid(), Mountpoint: mnt, Conn: conn, NoPassthrough: cfg.NoPassthrough}
	if err := k.readInit(); err != nil {
		return err
	}
	sock := ctl.KeeperSocket(cfg.State)
	os.Remove(sock) // stale: the state lock proves no keeper owns it
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return fmt.Errorf("keeper socket: %w", err)
	}
	ln.SetUnlinkOnClose(true)
	defer ln.Close()
	if err := writeJSONFile(filepath.Join(cfg.State, ctl.KeeperFileName), k.info); err != nil {
		return err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	go func() {
		s := <-sigs
		k.requestStop(stopOrder{why: "signal " + s.String()})
	}()
	go k.accept(ln)
	mounted = false // from here on, teardown owns the mount
	if cfg.Ready != nil {
		fmt.Fprintf(cfg.Ready, "keeper ready conn=%d pid=%d\n", conn, os.Getpid())
	}
	order := <-k.stop
	k.log.Printf("tearing down (%s)", order.why)
	err = k.teardown()
	if order.done != nil {
		order.done <- err
		select {
		case <-order.sent:
		case <-time.After(time.Second):
		}
	}
	return err
}

// readInit reads the FUSE_INIT request the kernel queued during mount.
func (k *keeper) readInit() error {
	buf := make([]byte, readBufSize)
	for {
		n, err := unix.Read(k.dev, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("read FUSE_INIT: %w", err)
		}
		h, err := fuseabi.ParseInHeader(buf[:n])
		if err != nil {
			return err
		}
		if h.Opcode != fuseabi.OpInit {
			return fmt.Errorf("first request is %v, not INIT", h.Opcode)
		}
		k.init = append([]byte(nil), buf[:n]...)
		return os.WriteFile(filepath.Join(k.cfg.State, ctl.InitFileName), k.init, 0o644)
	}
}

func (k *keeper) requestStop(o stopOrder) bool {
	sent := false
	k.stopOnce.Do(func() { k.stop <- o; sent = true })
	return sent
}

func (k *keeper) accept(ln *net.UnixListener) {
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			return
		}
		go k.serveConn(ctl.NewLineConn(c))
	}
}

// serveConn answers one client. A takeover turns the socket into the
// holder's: its close means the generation is gone.
func (k *keeper) serveConn(c *ctl.LineConn) {
	var gone chan struct{} // set once this socket holds the connection
	defer func() {
		c.Close()
		if gone != nil {
			k.mu.Lock()
			if k.holderGone == gone {
				k.holderGone, k.holderPID = nil, 0
			}
			k.mu.Unlock()
			close(gone)
		}
	}()
	for {
		var req ctl.Request
		fds, err := c.Receive(&req)
		closeFDs(fds)
		if err != nil {
			return
		}
		switch req.Op {
		case ctl.OpStatus:
			st := k.status()
			c.Send(ctl.Response{OK: true, Keeper: &st})
		case ctl.OpDevFD:
			c.Send(ctl.Response{OK: true}, k.dev)
		case ctl.OpTakeover:
			if gone != nil {
				c.Send(ctl.Response{Error: "this socket holds the connection already"})
				continue
			}
			h, g, err := k.grant(peerPID(c), req.Wait)
			if err != nil {
				c.Send(ctl.Response{Error: err.Error()})
				continue
			}
			gone = g
			c.Send(ctl.Response{OK: true, Handover: h}, k.dev)
		case ctl.OpInitAnswered:
			if gone == nil {
				c.Send(ctl.Response{Error: "only the generation holding the connection answers INIT"})
				continue
			}
			k.mu.Lock()
			k.initAnswered = true
			k.mu.Unlock()
			c.Send(ctl.Response{OK: true})
		case ctl.OpUmount:
			o := stopOrder{why: "umount order", done: make(chan error, 1), sent: make(chan struct{})}
			if !k.requestStop(o) {
				c.Send(ctl.Response{Error: "the keeper is tearing down already"})
				return
			}
			resp := ctl.Response{OK: true}
			if err := <-o.done; err != nil {
				resp = ctl.Response{Error: err.Error()}
			}
			c.Send(resp)
			close(o.sent)
			return
		default:
			c.Send(ctl.Response{Error: fmt.Sprintf("unknown op %q", req.Op)})
		}
	}
}

// grant hands the connection to a new generation once the previous one's
// socket has closed: waiting takeoverGrace for it, or indefinitely with
// wait.
func (k *keeper) grant(pid int, wait bool) (*ctl.Handover, chan struct{}, error) {
	for {
		k.mu.Lock()
		prev, prevPID := k.holderGone, k.holderPID
		if prev == nil {
			defer k.mu.Unlock()
			k.generations++
			k.holderGone, k.holderPID = make(chan struct{}), pid
			k.log.Printf("generation %d (pid %d) takes the connection", k.generations, pid)
			return &ctl.Handover{
				Generation:    k.generations,
				Init:          k.init,
				InitAnswered:  k.initAnswered,
				NoPassthrough: k.cfg.NoPassthrough,
				Conn:          k.info.Conn,
				Mountpoint:    k.info.Mountpoint,
				Token:         k.token,
			}, k.holderGone, nil
		}
		k.mu.Unlock()
		var timeout <-chan time.Time
		if !wait {
			timeout = time.After(takeoverGrace)
		}
		select {
		case <-prev:
		case <-timeout:
			return nil, nil, fmt.Errorf("generation pid %d still holds the connection", prevPID)
		}
	}
}

func (k *keeper) status() ctl.KeeperStatus {
	k.mu.Lock()
	defer k.mu.Unlock()
	fds, _ := os.ReadDir("/proc/self/fd")
	return ctl.KeeperStatus{
		KeeperInfo:   k.info,
		Generations:  k.generations,
		DaemonPID:    k.holderPID,
		InitAnswered: k.initAnswered,
		Goroutines:   runtime.NumGoroutine(),
		FDs:          len(fds) - 1, // the directory being read
	}
}

// teardown unmounts and ends the connection. With no daemon to answer, the
// connection is aborted first so that nothing blocked on it keeps the mount
// busy; a busy mount is detached and the connection aborted.
func (k *keeper) teardown() error {
	mnt, conn := k.info.Mountpoint, k.info.Conn
	k.mu.Lock()
	daemon := k.holderGone != nil
	k.mu.Unlock()
	aborted := false
	abort := func() {
		if !aborted {
			aborted = true
			if err := fuseabi.Abort(conn); err != nil {
				k.log.Printf("%v", err)
			}
		}
	}
	if !daemon {
		abort()
	}
	err := unix.Unmount(mnt, 0)
	switch {
	case err == nil, errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
		// unmounted now, or by someone else before
	case errors.Is(err, unix.EBUSY):
		k.log.Printf("unmount %s: busy; detaching and aborting connection %d", mnt, conn)
		abort()
		if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("unmount %s: %w", mnt, err)
		}
	default:
		abort()
		unix.Unmount(mnt, unix.MNT_DETACH)
		return fmt.Errorf("unmount %s: %w", mnt, err)
	}
	return nil
}

// lockState takes the state directory's keeper lock, so that one keeper at
// a time owns it.
func lockState(state string) (unlock func(), err error) {
	p := filepath.Join(state, "keeper.lock")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("state lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b, _ := os.ReadFile(p)
		f.Close()
		return nil, fmt.Errorf("another keeper (pid %s) serves %s", strings.TrimSpace(string(b)), state)
	}
	f.Truncate(0)
	fmt.Fprintf(f, "%d\n", os.Getpid())
	return func() { f.Close() }, nil
}

func randomToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// writeJSONFile writes v to p atomically (temporary file and rename).
func writeJSONFile(p string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return atomicfile.Write(p, b, 0o644)
}

func peerPID(c *ctl.LineConn) int {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0
	}
	pid := 0
	raw.Control(func(fd uintptr) {
		if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
			pid = int(cred.Pid)
		}
	})
	return pid
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
