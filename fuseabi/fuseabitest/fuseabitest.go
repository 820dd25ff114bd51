// Package fuseabitest holds the checks that tests running FUSE on the host
// share: that /dev/fuse is usable, and that the host kernel may be taken as
// unpatched. It imports no fusevm package, so that package fuseabi's own
// tests use it too; like fuseabi it is for guest packages as well as host
// ones.
package fuseabitest

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// HostPatchedEnv is the environment variable that says the host kernel
// carries (part of) the series: set to anything, the tests that take the
// host as unpatched skip.
const HostPatchedEnv = "FUSEVM_HOST_PATCHED"

// RequireDevFuse skips t unless /dev/fuse opens for reading and writing.
func RequireDevFuse(t testing.TB) {
	t.Helper()
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no usable /dev/fuse: %v", err)
	}
	unix.Close(fd)
}

// RequireUnpatchedHost skips t unless fuseabi's probes can answer on this
// host and be taken to say no: root (they mount FUSE and register backing
// files), a kernel taken as unpatched, as the project's machines are (the
// series is in no released kernel; HostPatchedEnv says otherwise), and a
// usable /dev/fuse. Whether the kernel offers FUSE passthrough at all is
// left to the caller.
func RequireUnpatchedHost(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the probes mount FUSE and register backing files")
	}
	if os.Getenv(HostPatchedEnv) != "" {
		t.Skip(HostPatchedEnv + " is set: the host kernel carries the series")
	}
	RequireDevFuse(t)
}
