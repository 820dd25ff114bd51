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
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
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
	// Stdout is a path the child's stdout is opened from (a pipe of the
	// requester's, as /proc/PID/fd/N).
	Stdout string `json:"stdout"`
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

// Child is a process the spawner started: a fusetestd keeper or daemon
// generation, which prints one line on stdout once it serves. Its stdout
// comes back through a pipe and goes on to the console; so its readiness
// and its exit are events, not something to poll for.
type Child struct {
	PID   int           // its process id
	ready chan string   // the first line of its stdout
	gone  chan struct{} // closed at the end of its stdout: it has exited
}

// Start starts args[0] with args[1:]. Its stdout and stderr go to the
// console.
func (s *Spawner) Start(args []string) (*Child, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("spawner: %w", err)
	}
	pid, err := s.request(spawnRequest{Args: args, Stdout: fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), w.Fd())})
	w.Close() // the child holds the only write end now
	if err != nil {
		r.Close()
		return nil, err
	}
	c := &Child{PID: pid, ready: make(chan string, 1), gone: make(chan struct{})}
	go c.relay(r)
	return c, nil
}

func (s *Spawner) request(req spawnRequest) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enc.Encode(req); err != nil {
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

// relay copies the child's stdout to the console until the child exits
// (reading on keeps a late write from failing with EPIPE), handing over
// its first line.
func (c *Child) relay(r *os.File) {
	defer r.Close()
	defer close(c.gone)
	br := bufio.NewReader(r)
	first := true
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			os.Stderr.WriteString(line)
			if first && strings.HasSuffix(line, "\n") {
				c.ready <- strings.TrimSuffix(line, "\n")
				first = false
			}
		}
		if err != nil {
			return
		}
	}
}

// errExited is WaitReady's error when the child exited before its line.
var errExited = errors.New("exited before serving")

// WaitReady waits for the child's first line on stdout and returns it. It
// fails with errExited as soon as the child exits without one.
func (c *Child) WaitReady(ctx context.Context) (string, error) {
	select {
	case line := <-c.ready:
		return line, nil
	case <-c.gone:
		select { // the last line and the end of output arrive together
		case line := <-c.ready:
			return line, nil
		default:
			return "", errExited
		}
	case <-ctx.Done():
		return "", ctx.Err()
	}
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
		if pid, err := spawn(req); err != nil {
			rep.Error = err.Error()
		} else {
			rep.PID = pid
		}
		if err := enc.Encode(rep); err != nil {
			return err
		}
	}
}

// spawn starts what req asks and reaps it in the background.
func spawn(req spawnRequest) (int, error) {
	if len(req.Args) == 0 {
		return 0, errors.New("spawner: empty command")
	}
	cmd := exec.Command(req.Args[0], req.Args[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if req.Stdout != "" {
		f, err := os.OpenFile(req.Stdout, os.O_WRONLY, 0)
		if err != nil {
			return 0, fmt.Errorf("spawner: stdout: %w", err)
		}
		defer f.Close()
		cmd.Stdout = f
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	go cmd.Wait()
	return cmd.Process.Pid, nil
}

// kill sends SIGKILL to pid and waits until it is dead.
func kill(pid int, within time.Duration) error {
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
		return err
	}
	return waitDead(pid, within)
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
			return fmt.Errorf("pid %d still alive after %s", pid, within)
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
