// Package interptest holds what the tests that run scenarios on the host
// kernel share, as the guest agent runs them in a VM (package interp's own
// tests and guestshell's): the test binary as the process spawner,
// fusetestd built for the test, fusectl mounted, and a check that a
// scenario left nothing mounted. It imports only guest packages.
package interptest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"fusevm/fuseabi"
	"fusevm/scenarios/interp"
)

// spawnerArg makes the test binary serve as the process spawner, as the
// guest's /init does.
const spawnerArg = "interptest-spawner"

// Main runs the tests of m and exits, or serves as the process spawner
// when StartSpawner started the test binary. Call it from TestMain.
func Main(m *testing.M) {
	if len(os.Args) == 2 && os.Args[1] == spawnerArg {
		if err := interp.ServeSpawner(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "spawner:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// StartSpawner starts the test binary again as the process spawner; the
// test's TestMain must call Main.
func StartSpawner(t testing.TB) *interp.Spawner {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	spawner, err := interp.StartSpawner(self, spawnerArg)
	if err != nil {
		t.Fatal(err)
	}
	return spawner
}

// BuildDaemon builds fusetestd into a temporary directory and returns its
// path.
func BuildDaemon(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fusetestd")
	if out, err := exec.Command("go", "build", "-o", bin, "fusevm/cmd/fusetestd").CombinedOutput(); err != nil {
		t.Fatalf("build fusetestd: %v\n%s", err, out)
	}
	return bin
}

// KeepFusectlMounted mounts fusectl, which the scenarios use, unless it is
// mounted, and unmounts it after t if it was not. The caller decides
// whether an error fails or skips t.
func KeepFusectlMounted(t testing.TB) error {
	t.Helper()
	mounted, err := fuseabi.IsMountpoint(fuseabi.FusectlDir)
	if err != nil {
		return err
	}
	if mounted {
		return nil
	}
	if err := fuseabi.EnsureFusectl(); err != nil {
		return err
	}
	t.Cleanup(func() {
		if err := unix.Unmount(fuseabi.FusectlDir, 0); err != nil {
			t.Errorf("unmount fusectl: %v", err)
		}
	})
	return nil
}

// CheckUnmounted fails t if a scenario left one of its backing
// filesystems or FUSE mounts mounted under root (backing, backing-NAME,
// mnt, mnt-NAME), and detaches them.
func CheckUnmounted(t testing.TB, root string) {
	t.Helper()
	// No stat of the mount points: one on a FUSE mount nobody serves
	// would block (Glob reads only the names of a pattern with a "*").
	dirs := []string{filepath.Join(root, "mnt"), filepath.Join(root, "backing")}
	for _, pattern := range []string{"mnt-*", "backing-*"} {
		m, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, m...)
	}
	for _, p := range dirs {
		mounted, err := fuseabi.IsMountpoint(p)
		if err != nil {
			t.Error(err)
		}
		if mounted {
			t.Errorf("%s is still mounted after the scenario", p)
			unix.Unmount(p, unix.MNT_DETACH)
		}
	}
}

// CheckNoProcesses fails t if a process whose command line names root (a
// keeper or a daemon generation of a scenario run there) is still alive,
// and kills it.
func CheckNoProcesses(t testing.TB, root string) {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		cmdline, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(cmdline, []byte(root)) {
			continue // gone meanwhile, or not the scenario's
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		t.Errorf("process %d is still alive after the scenario: %s", pid, bytes.ReplaceAll(bytes.TrimRight(cmdline, "\x00"), []byte{0}, []byte{' '}))
		unix.Kill(pid, unix.SIGKILL)
	}
}
