package fusetestd_test

import (
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"fusevm/fuseabi"
	"fusevm/fusetestd/ctl"
)

// The reproducers below assert the behaviour of an unpatched kernel (the
// host's); on a kernel carrying the close-all series they skip.
func requireUnpatched(t *testing.T) {
	t.Helper()
	if err := fuseabi.HaveBackingCloseAll(); err == nil {
		t.Skip("kernel carries the close-all series; this reproducer expects an unpatched kernel")
	}
}

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

func TestReopenAfterRestartGivesEIO(t *testing.T) {
	requireUnpatched(t)
	e := newEnv(t, map[string]string{"a.txt": content})
	gen1 := e.serve()
	fd1 := e.mustOpen("a.txt", unix.O_RDONLY)
	e.restart(gen1)

	if _, err := e.open("a.txt", unix.O_RDONLY); !errors.Is(err, unix.EIO) {
		t.Fatalf("reopen while the first fd is open: %v, want EIO", err)
	}
	e.close(fd1)
	e.expectFile("a.txt", content)
}

func TestLeakKeepsBackingBusyUntilConnectionFreed(t *testing.T) {
	requireUnpatched(t)
	e := newEnv(t, map[string]string{"a.txt": content})
	gen1 := e.serve()
	fd := e.mustOpen("a.txt", unix.O_RDONLY)
	gen2 := e.restart(gen1, "--recovery", "none")
	e.close(fd)
	e.waitStatus("the dead generation's RELEASE", func(s ctl.Status) bool { return s.UnknownReleases == 1 && len(s.BackingIDs) == 0 })
	gen2.kill(t, unix.SIGKILL) // no daemon holds anything on the tmpfs now

	if err := e.umountBacking(0); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("umount backing tmpfs with the leaked id: %v, want EBUSY", err)
	}
	if err := fuseabi.Abort(e.conn); err != nil {
		t.Fatal(err)
	}
	if err := unix.Unmount(e.mnt, 0); err != nil {
		t.Fatalf("umount FUSE: %v", err)
	}
	if err := e.umountBacking(0); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("umount backing tmpfs after abort and FUSE umount: %v, want EBUSY", err)
	}
	e.keeper.kill(t, unix.SIGTERM) // closes the last /dev/fuse fd
	if err := e.umountBacking(3 * time.Second); err != nil {
		t.Fatalf("umount backing tmpfs once the connection is freed: %v", err)
	}
}

func TestCloseAllReportsENOTTY(t *testing.T) {
	e := newEnv(t, map[string]string{"a.txt": content})
	gen1 := e.serve()
	gen1.kill(t, unix.SIGKILL)
	e.serve("--recovery", "close-all")
	st := e.status()
	want := "ENOTTY"
	if fuseabi.HaveBackingCloseAll() == nil {
		want = ""
	}
	if st.Recovery.Strategy != "close-all" || st.Recovery.Errno != want {
		t.Fatalf("recovery: %+v, want errno %q", st.Recovery, want)
	}
	e.expectFile("a.txt", content)
}

func TestCloseMinusOneReportsEINVAL(t *testing.T) {
	requireUnpatched(t)
	e := newEnv(t, map[string]string{"a.txt": content})
	e.serve("--recovery", "close-minus-one")
	if r := e.status().Recovery; r.Errno != "EINVAL" {
		t.Fatalf("recovery: %+v, want EINVAL", r)
	}
}

func TestInFlightRequestResent(t *testing.T) {
	e := newEnv(t, map[string]string{"a.txt": content})
	gen1 := e.serve()
	if err := e.client().Hold("LOOKUP"); err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	go func() {
		var st unix.Stat_t
		res <- unix.Stat(e.path("a.txt"), &st)
	}()
	e.waitStatus("a held LOOKUP", func(s ctl.Status) bool { return s.Held["LOOKUP"] == 1 })
	if n, err := fuseabi.Waiting(e.conn); err != nil || n < 1 {
		t.Fatalf("fusectl waiting: %d, %v; want the held LOOKUP", n, err)
	}
	gen1.kill(t, unix.SIGKILL)
	select {
	case err := <-res:
		t.Fatalf("stat returned with no daemon: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	e.serve()
	select {
	case err := <-res:
		if err != nil {
			t.Fatalf("stat after the restart: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the LOOKUP read by the dead generation was never answered")
	}
	if st := e.status(); st.ResendErrno != "" || st.Served["LOOKUP"] == 0 {
		t.Fatalf("status: %+v", st)
	}
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

func TestInodeCacheFlagRefusedWithoutV1(t *testing.T) {
	if fuseabi.HaveInodeCache(fuseabi.InodeCacheBitV1) == nil {
		t.Skip("kernel carries v1's inode-cache flag")
	}
	e := newEnv(t, map[string]string{"a.txt": content})
	e.serve("--inode-cache")
	if f := e.status().InodeCacheFlag; f != 1<<fuseabi.InodeCacheBitV1 {
		t.Fatalf("inode cache flag %#x", f)
	}
	// Open flags outside the passthrough mask make the kernel refuse.
	if _, err := e.open("a.txt", unix.O_RDONLY); !errors.Is(err, unix.EIO) {
		t.Fatalf("passthrough open with the flag on a kernel without it: %v, want EIO", err)
	}
}

func TestIDPerOpenConcurrentOpenGivesEIO(t *testing.T) {
	requireUnpatched(t)
	e := newEnv(t, map[string]string{"a.txt": content})
	e.serve("--id-per-open")
	fd1 := e.mustOpen("a.txt", unix.O_RDONLY)
	if _, err := e.open("a.txt", unix.O_RDONLY); !errors.Is(err, unix.EIO) {
		t.Fatalf("second concurrent open: %v, want EIO", err)
	}
	e.close(fd1)
	e.expectFile("a.txt", content)
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

func TestScanCloseFreesBacking(t *testing.T) {
	e := newEnv(t, map[string]string{"a.txt": content})
	gen1 := e.serve()
	fd := e.mustOpen("a.txt", unix.O_RDONLY)
	leaked := e.status().BackingIDs[0].ID
	gen2 := e.restart(gen1, "--recovery", "scan-close")
	r := e.status().Recovery
	if !slices.Contains(r.Closed, leaked) {
		t.Fatalf("scan-close did not close the dead generation's id %d: %+v", leaked, r)
	}
	e.close(fd)
	e.waitStatus("the dead generation's RELEASE", func(s ctl.Status) bool { return s.UnknownReleases == 1 })
	gen2.kill(t, unix.SIGKILL)
	if err := e.umountBacking(3 * time.Second); err != nil {
		t.Fatalf("umount backing tmpfs after scan-close, connection alive: %v", err)
	}
	if _, err := ctl.KeeperStatusOf(e.state); err != nil {
		t.Fatalf("keeper gone: %v", err)
	}
}

func TestAdoptReopensAndFreesBacking(t *testing.T) {
	e := newEnv(t, map[string]string{"a.txt": content})
	gen1 := e.serve("--recovery", "adopt")
	fd1 := e.mustOpen("a.txt", unix.O_RDONLY)
	id := e.status().BackingIDs[0].ID
	gen2 := e.restart(gen1, "--recovery", "adopt")
	st := e.status()
	if !slices.Equal(st.Recovery.Adopted, []int32{id}) {
		t.Fatalf("adopted %v, want [%d]: %+v", st.Recovery.Adopted, id, st.Recovery)
	}
	fd2 := e.mustOpen("a.txt", unix.O_RDONLY)
	e.expectContent(fd2, content)
	if ids := e.status().BackingIDs; len(ids) != 1 || ids[0].ID != id || ids[0].Refs != 2 {
		t.Fatalf("backing ids after the reopen: %+v", ids)
	}
	e.close(fd1)
	e.close(fd2)
	e.waitStatus("the adopted id closed", func(s ctl.Status) bool { return len(s.BackingIDs) == 0 })
	gen2.kill(t, unix.SIGKILL)
	if err := e.umountBacking(3 * time.Second); err != nil {
		t.Fatalf("umount backing tmpfs after adopt, connection alive: %v", err)
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

func fileName(i int) string    { return "f" + string(rune('a'+i)) + ".txt" }
func fileContent(i int) string { return "content of file " + fileName(i) + "\n" }
