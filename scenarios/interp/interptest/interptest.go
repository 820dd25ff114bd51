// Package interptest holds what the tests that run scenarios on the host
// kernel share, as the guest agent runs them in a VM (package interp's own
// tests and guestshell's): the test binary as the process spawner,
// fusetestd built for the test, fusectl mounted, and a check that a
// scenario left nothing mounted. It imports only guest packages.
package interptest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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

// CheckUnmounted fails t if a scenario left its backing tmpfs or its FUSE
// filesystem mounted under root, and detaches them.
func CheckUnmounted(t testing.TB, root string) {
	t.Helper()
	for _, dir := range []string{"mnt", "backing"} {
		p := filepath.Join(root, dir)
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
