package fusetestd_test

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"fusevm/fuseabi"
	"fusevm/fusetestd/ctl"
)

const content = "the quick brown fox\n"

func TestPassthroughReadWrite(t *testing.T) {
	e := newEnv(t, map[string]string{"a.txt": content})
	e.serve()
	fd := e.mustOpen("a.txt", unix.O_RDONLY)
	e.expectContent(fd, content)
	st := e.status()
	if !st.Passthrough || st.PlainIO {
		t.Fatalf("passthrough not in use: %+v", st)
	}
	if len(st.BackingIDs) != 1 || st.BackingIDs[0].Path != "a.txt" || st.BackingIDs[0].Refs != 1 {
		t.Fatalf("backing ids while a.txt is open: %+v", st.BackingIDs)
	}
	e.close(fd)

	wfd := e.mustOpen("new.txt", unix.O_RDWR|unix.O_CREAT|unix.O_TRUNC)
	if _, err := unix.Pwrite(wfd, []byte("written through\n"), 0); err != nil {
		t.Fatal(err)
	}
	e.expectContent(wfd, "written through\n")
	e.close(wfd)
	if b, err := os.ReadFile(e.backing + "/new.txt"); err != nil || string(b) != "written through\n" {
		t.Fatalf("backing file: %q, %v", b, err)
	}
	st = e.waitStatus("all ids closed", func(s ctl.Status) bool { return len(s.BackingIDs) == 0 })
	if st.Served["READ"] != 0 || st.Served["WRITE"] != 0 {
		t.Fatalf("READ/WRITE reached the daemon: %v", st.Served)
	}
	if st.Served["CREATE"] != 1 || st.Served["OPEN"] != 1 {
		t.Fatalf("served: %v", st.Served)
	}
}

func TestPlainIOWithoutPassthrough(t *testing.T) {
	e := newEnv(t, map[string]string{"a.txt": content}, "--no-passthrough")
	e.serve()
	e.expectFile("a.txt", content)
	st := e.status()
	if st.Passthrough || !st.PlainIO || st.Served["READ"] == 0 || st.IDsOpened != 0 {
		t.Fatalf("want plain I/O through the daemon: %+v", st)
	}
}

func TestCrashKeepsMountAndOpenFile(t *testing.T) {
	e := newEnv(t, map[string]string{"a.txt": content, "b.txt": "bee\n"})
	gen1 := e.serve()
	fd := e.mustOpen("a.txt", unix.O_RDONLY)
	next := e.startServe(false, "--standby")
	next.waitLine(t, "standby")
	gen1.kill(t, unix.SIGKILL)

	if conn, err := fuseabi.MountConn(e.mnt); err != nil || conn != e.conn {
		t.Fatalf("mount gone after the crash: %v", err)
	}
	e.expectContent(fd, content) // passthrough: no daemon needed

	next.waitLine(t, "serving")
	st := e.status()
	if st.Generation != 2 || st.ResendErrno != "" {
		t.Fatalf("second generation: %+v", st)
	}
	var sb unix.Stat_t
	if err := unix.Stat(e.path("b.txt"), &sb); err != nil {
		t.Fatalf("lookup in the new generation: %v", err)
	}
	e.expectFile("b.txt", "bee\n")
	e.close(fd)
	e.waitStatus("the dead generation's RELEASE", func(s ctl.Status) bool { return s.UnknownReleases == 1 })
}

func TestReleaseHeld(t *testing.T) {
	e := newEnv(t, map[string]string{"a.txt": content})
	e.serve()
	cl := e.client()
	if err := cl.Hold("lookup"); err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	go func() {
		var st unix.Stat_t
		res <- unix.Stat(e.path("a.txt"), &st)
	}()
	e.waitStatus("a held LOOKUP", func(s ctl.Status) bool { return s.Held["LOOKUP"] == 1 })
	if n, err := cl.ReleaseHeld(""); err != nil || n != 1 {
		t.Fatalf("release held: %d, %v", n, err)
	}
	if err := withTimeout(t, 5*time.Second, "stat", func() error { return <-res }); err != nil {
		t.Fatal(err)
	}
}

func TestForcedBackingID(t *testing.T) {
	e := newEnv(t, map[string]string{"a.txt": content, "b.txt": "bee\n"})
	e.serve()
	cl := e.client()
	id, errno, err := cl.BackingOpen("b.txt")
	if err != nil || errno != "" || id <= 0 {
		t.Fatalf("backing-open: %d %q %v", id, errno, err)
	}
	// a.txt served through b.txt's backing file.
	if err := cl.NextOpenID("a.txt", id); err != nil {
		t.Fatal(err)
	}
	e.expectFile("a.txt", "bee\n")
	if errno, err := cl.BackingClose(id); err != nil || errno != "" {
		t.Fatalf("backing-close: %q %v", errno, err)
	}
	if errno, _ := cl.BackingClose(id); errno != "ENOENT" {
		t.Fatalf("second backing-close: %q, want ENOENT", errno)
	}
	// A stale id: the open fails.
	if err := cl.NextOpenID("a.txt", id); err != nil {
		t.Fatal(err)
	}
	if _, err := e.open("a.txt", unix.O_RDONLY); err == nil {
		t.Fatal("open with a stale backing id succeeded")
	}
}

func TestDevFuseFDFromKeeper(t *testing.T) {
	e := newEnv(t, map[string]string{"a.txt": content})
	e.serve()
	fd, err := ctl.DevFuseFD(e.state)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := fuseabi.BackingClose(fd, 99999); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("BACKING_CLOSE of an unknown id on the keeper's fd: %v, want ENOENT", err)
	}
}

func TestCrashRestartCycles(t *testing.T) {
	const cycles = 20
	files := map[string]string{"keep.txt": "kept open across every crash\n"}
	for i := range cycles {
		files[fileName(i)] = fileContent(i)
	}
	e := newEnv(t, files)
	gen := e.serve("--recovery", "adopt")
	keep := e.mustOpen("keep.txt", unix.O_RDONLY)
	var first ctl.KeeperStatus
	for i := range cycles {
		fd := e.mustOpen(fileName(i), unix.O_RDONLY)
		e.expectContent(fd, fileContent(i))
		e.close(fd)
		again := e.mustOpen("keep.txt", unix.O_RDONLY) // works thanks to adopt
		e.expectContent(again, files["keep.txt"])
		e.close(again)
		e.expectContent(keep, files["keep.txt"])

		if i == 0 {
			first = e.keeperStatus()
		} else {
			// The old generation's socket goroutine may be ending.
			deadline := time.Now().Add(time.Second)
			for ks := e.keeperStatus(); ks.Goroutines > first.Goroutines || ks.FDs > first.FDs; ks = e.keeperStatus() {
				if time.Now().After(deadline) {
					t.Fatalf("cycle %d: keeper grew from %d goroutines, %d fds to %d, %d", i, first.Goroutines, first.FDs, ks.Goroutines, ks.FDs)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		next := e.startServe(false, "--recovery", "adopt", "--standby")
		next.waitLine(t, "standby")
		gen.kill(t, unix.SIGKILL)
		e.expectContent(keep, files["keep.txt"]) // no daemon at all
		next.waitLine(t, "serving")
		gen = next
	}
	e.close(keep)
	if st := e.status(); st.Generation != cycles+1 {
		t.Fatalf("generation %d, want %d", st.Generation, cycles+1)
	}
}

// TestNoProbe checks that a generation started with --no-probe takes no
// backing id of its own: the first id registered on a fresh connection is
// 1 (2 after a probing generation), passthrough still comes from INIT, and
// scan-close, having no probe id to scan below, closes nothing and says so.
func TestNoProbe(t *testing.T) {
	if _, _, id := firstID(t); id != 2 {
		t.Fatalf("first id registered after a probing generation: %d, want 2", id)
	}
	e, gen1, id := firstID(t, "--no-probe")
	if id != 1 {
		t.Fatalf("first id registered with --no-probe: %d, want 1", id)
	}
	if st := e.status(); !st.Passthrough || st.PlainIO {
		t.Fatalf("passthrough not in use with --no-probe: %+v", st)
	}
	e.expectFile("a.txt", content)
	gen1.kill(t, unix.SIGKILL)
	e.serve("--no-probe", "--recovery", "scan-close")
	if r := e.status().Recovery; r.Errno != "ENOTSUP" || len(r.Closed) != 0 || !strings.Contains(r.Detail, "no probe id") {
		t.Fatalf("scan-close with --no-probe: %+v", r)
	}
	if errno, err := e.client().BackingClose(id); err != nil || errno != "" {
		t.Fatalf("the first generation's id %d: %q %v, want it still registered", id, errno, err)
	}
}

// firstID mounts a fresh connection serving a.txt, starts a generation
// with args and returns the first id registered on the connection, by
// the generation's control socket.
func firstID(t *testing.T, args ...string) (*env, *proc, int32) {
	t.Helper()
	e := newEnv(t, map[string]string{"a.txt": content})
	gen := e.serve(args...)
	id, errno, err := e.client().BackingOpen("a.txt")
	if err != nil || errno != "" {
		t.Fatalf("backing-open with %v: %q %v", args, errno, err)
	}
	return e, gen, id
}

func fileName(i int) string    { return "f" + string(rune('a'+i)) + ".txt" }
func fileContent(i int) string { return "content of file " + fileName(i) + "\n" }
