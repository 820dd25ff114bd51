package interp

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
	"time"
)

// Spawner starts the keeper and daemon generations from a helper process
// that never opens a file on the FUSE mount. Starting them from the
// interpreter itself would hang: a fork copies its descriptors, among them
// files open on the mount, and exec closes those copies, and each close
// sends a FLUSH that no daemon answers between a crash and a restart.
type Spawner struct {
	mu  sync.Mutex
	enc *json.Encoder
	dec *json.Decoder
}

type spawnRequest struct {
	Args []string `json:"args"`
}

type spawnReply struct {
	PID   int    `json:"pid"`
	Error string `json:"error,omitempty"`
}

// StartSpawner runs `self arg` as the helper, talking over its stdin and
// stdout; the helper must call ServeSpawner. Call it before any file is
// opened on a FUSE mount.
func StartSpawner(self, arg string) (*Spawner, error) {
	cmd := exec.Command(self, arg)
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &Spawner{enc: json.NewEncoder(in), dec: json.NewDecoder(bufio.NewReader(out))}, nil
}

// Start starts args[0] with args[1:] and returns its pid. Its output goes
// to the console.
func (s *Spawner) Start(args []string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enc.Encode(spawnRequest{Args: args}); err != nil {
		return 0, fmt.Errorf("spawner: %w", err)
	}
	var rep spawnReply
	if err := s.dec.Decode(&rep); err != nil {
		return 0, fmt.Errorf("spawner: %w", err)
	}
	if rep.Error != "" {
		return 0, errors.New(rep.Error)
	}
	return rep.PID, nil
}

// ServeSpawner is the helper's loop: start what is asked, reap children.
// It returns when in closes.
func ServeSpawner(in io.Reader, out io.Writer) error {
	dec := json.NewDecoder(in)
	enc := json.NewEncoder(out)
	for {
		var req spawnRequest
		if err := dec.Decode(&req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		var rep spawnReply
		if len(req.Args) == 0 {
			rep.Error = "spawner: empty command"
		} else {
			cmd := exec.Command(req.Args[0], req.Args[1:]...)
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Start(); err != nil {
				rep.Error = err.Error()
			} else {
				rep.PID = cmd.Process.Pid
				go cmd.Wait()
			}
		}
		if err := enc.Encode(rep); err != nil {
			return err
		}
	}
}

// kill sends SIGKILL to pid and waits until it is dead.
func kill(pid int, within time.Duration) error {
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
		return err
	}
	return waitDead(pid, within)
}

// errAlive is waitDead's error when the process outlived the wait.
var errAlive = errors.New("still alive")

// untilExit returns a context that ends with ctx or as soon as pid has
// exited, whichever comes first; cancel releases it.
func untilExit(ctx context.Context, pid int) (context.Context, context.CancelFunc) {
	wctx, cancel := context.WithCancel(ctx)
	go func() {
		for wctx.Err() == nil {
			if err := waitDead(pid, 200*time.Millisecond); !errors.Is(err, errAlive) {
				if err == nil {
					cancel()
				}
				return
			}
		}
	}()
	return wctx, cancel
}

// waitDead waits until every thread of pid has exited, so that all of its
// descriptors are closed. Polling /proc for a zombie is not enough: a
// thread-group leader is a zombie while its other threads still hold the
// descriptor table, whereas a pidfd turns readable only once the whole group
// is gone.
func waitDead(pid int, within time.Duration) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil // already reaped, so every thread had exited
	}
	if err != nil {
		return fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	deadline := time.Now().Add(within)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("pid %d %w after %s", pid, errAlive, within)
		}
		n, err := unix.Poll(fds, int(left.Milliseconds())+1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("poll pidfd %d: %w", pid, err)
		}
		if n > 0 {
			return nil
		}
	}
}
