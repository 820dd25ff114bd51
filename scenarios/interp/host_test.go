package interp_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"fusevm/events"
	"fusevm/fuseabi"
	"fusevm/fuseabi/fuseabitest"
	"fusevm/scenarios"
	"fusevm/scenarios/interp"
	"fusevm/scenarios/interp/interptest"
	"fusevm/scenarios/script"
	"fusevm/verdict"
)

// TestMain runs the tests, or the spawner when started by
// interptest.StartSpawner.
func TestMain(m *testing.M) { interptest.Main(m) }

// hostFailure is the step at which a scenario fails, and what it gave.
type hostFailure struct{ step, got string }

// hostFailures is where each scenario needing a claim fails on an
// unpatched kernel. A reproducer failing anywhere else (setup, the daemon,
// an earlier check) would prove nothing about its bug.
var hostFailures = map[string]hostFailure{
	// No close-all ioctl.
	"close-all-keeps-open-files": {"ioctl close-all", "ENOTTY"},
	"close-all-race":             {"ioctl close-all", "ENOTTY"},
	"stale-id":                   {"ioctl close-all", "ENOTTY"},
	"close-all-many-ids":         {"ioctl close-all", "ENOTTY"},
	"close-all-two-connections":  {"ioctl close-all", "ENOTTY"},
	"close-all-new-ids-fresh":    {"ioctl close-all", "ENOTTY"},
	"close-all-no-kernel-leak":   {"ioctl close-all", "ENOTTY"},
	"backing-ids-race":           {"ioctl close-all", "ENOTTY"},
	"close-all-enomem":           {"ioctl close-all", "ENOTTY"},
	"init-enomem":                {"ioctl close-all", "ENOTTY"},
	// The dead generation's backing file leaks (recovery gave ENOTTY or
	// EINVAL, as the scenario expects, before).
	"leak-after-restart": {"free-space is=$empty", "error"},
	"close-minus-one":    {"umount-backing", "EBUSY"},
	// BACKING_CLOSE(-1) is an invalid id.
	"close-minus-one-race": {"ioctl close-minus-one", "EINVAL"},
	// A second backing id for an inode is refused.
	"reopen-after-restart":  {"open h2 a.txt", "EIO"},
	"reregister-no-restart": {"open h2 a.txt", "EIO"},
	"crash-loop":            {"open h a.txt", "EIO"},
	"hard-link-accepted":    {"open h2 a.txt", "EIO"},
	"crash-data-mmap":       {"open new a.txt rw", "EIO"},
	// An open with the inode-cache flag is refused.
	"reopen-inode-cache": {"open h1 a.txt", "EIO"},
	// The first of the two connections has ended.
	"connections-counts-own": {"connections 2", "error"},
	// Steps act on the current connection, here an unmounted one.
	"connections-by-name": {"passthrough", "error"},
	// Two files of one tmpfs have different inode numbers.
	"backing-filesystems": {"backing-ino b.txt is=$ino", "error"},
	// Without a probe id, scan-close cannot scan.
	"no-probe-scan-close": {"recovery", "ENOTSUP"},
}

// stepErrorRe picks the step and its outcome out of a FAIL's detail, which
// blocks may prefix ("repeat 1/50: line 15: open h a.txt: got EIO, want ok").
var stepErrorRe = regexp.MustCompile(`line \d+: (.+): got (\S+?)[ ,]`)

// TestScenariosOnHost runs every built-in scenario on the running kernel
// the way the guest agent runs it in a VM: fusetestd is built once, and
// this test binary, re-executed, is the process spawner. The host kernel
// is taken as unpatched (no claims), so a scenario with needs must fail,
// and only at the step its bug breaks (hostFailures).
func TestScenariosOnHost(t *testing.T) {
	h := newHost(t)
	all, err := scenarios.Load([]string{"all"})
	if err != nil {
		t.Fatal(err)
	}
	type check struct {
		s    *script.Script
		want verdict.Verdict
	}
	var checks []check
	for _, sc := range all {
		checks = append(checks, check{sc.Script, scenarios.Expected(sc.Script, nil)})
	}
	for name, text := range hostScripts {
		s, err := script.Parse(name, name, text)
		if err != nil {
			t.Fatal(err)
		}
		checks = append(checks, check{s, verdict.Fail})
	}
	for _, c := range checks {
		t.Run(c.s.Name, func(t *testing.T) {
			res, steps := h.run(t, c.s)
			if res.Verdict != c.want {
				t.Fatalf("%s, want %s: %s\nsteps:\n%s", res.Verdict, c.want, res.Detail, steps)
			}
			if c.want != verdict.Fail {
				return
			}
			wf, ok := hostFailures[c.s.Name]
			m := stepErrorRe.FindStringSubmatch(res.Detail)
			if !ok || m == nil || m[1] != wf.step || m[2] != wf.got {
				t.Fatalf("fails with %q; want the failure listed in hostFailures (%+v)\nsteps:\n%s", res.Detail, wf, steps)
			}
		})
	}
}

// TestTimeoutAbortsEveryConnection runs into a scenario's timeout with a
// step blocked on a connection other than the current one (a close whose
// FLUSH no daemon answers): the timeout must abort every connection, so
// that the step returns at once, and leave nothing mounted or running.
func TestTimeoutAbortsEveryConnection(t *testing.T) {
	h := newHost(t)
	s, err := script.Parse("timeout", "timeout", `timeout: 1s
backing 1M
file a.txt "a"
mount
mount as=other
open h a.txt
crash
use main
close h
`)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, steps := h.run(t, s)
	if res.Verdict != verdict.Hang || !strings.Contains(res.Detail, "line 9: close h") {
		t.Fatalf("%s: %s, want a HANG in close h\nsteps:\n%s", res.Verdict, res.Detail, steps)
	}
	// Aborting only the current connection would leave the close blocked
	// for the 10 s Run grants a blocked step.
	if took := time.Since(start); took > s.Timeout+5*time.Second {
		t.Errorf("the scenario took %s with a %s timeout", took, s.Timeout)
	}
}

// TestDaemonExitFailsMount: a daemon generation that exits before it
// serves (here: an unknown recovery strategy) fails its mount at once with
// a clear error, not at the scenario's timeout.
func TestDaemonExitFailsMount(t *testing.T) {
	h := newHost(t)
	s, err := script.Parse("bad-daemon", "bad-daemon", "timeout: 30s\nbacking 1M\nmount recovery=bogus\numount\n")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, steps := h.run(t, s)
	if res.Verdict != verdict.Fail || !strings.Contains(res.Detail, "line 3: mount recovery=bogus") || !strings.Contains(res.Detail, "exited before serving") {
		t.Fatalf("%s: %s, want a FAIL at the mount naming the daemon's exit\nsteps:\n%s", res.Verdict, res.Detail, steps)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the failed mount took %s", took)
	}
}

// hostScripts check steps that the built-in scenarios only show passing;
// each must fail where hostFailures says.
var hostScripts = map[string]string{
	// connections counts the scenario's own connections, across mounts.
	"connections-counts-own": `backing 1M
mount
connections 1
umount
connections 0
mount
connections 1
connections 2
`,
	// Connections by name: each has its own daemon and id table, handles
	// are usable whatever the current connection, a name mounts again once
	// unmounted, and connections counts them all.
	"connections-by-name": `backing 1M
file a.txt "shared"
mount
open hm a.txt
mount as=other no-probe
ioctl backing-open a.txt as=id is=1    # other's own table, no probe id
open ho a.txt
use main
ioctl backing-open a.txt is=3          # main's: probe 1, hm's 2
read ho "shared"
close hm
umount
connections 1
use other
close ho
umount
connections 0
mount as=other
connections 1
use main
passthrough
`,
	// Further backing filesystems: files, links and inode numbers on them,
	// their free space, and their unmount.
	"backing-filesystems": `backing 1M
backing 1M as=alt
file a.txt "a"
file b.txt "b"
file alt:x.txt "x"
backing-ino a.txt as=ino
backing-ino alt:x.txt is=$ino          # the first file of each tmpfs
backing-ino b.txt not=$ino
link-backing b.txt c.txt
backing-ino c.txt is=3
link-backing a.txt alt:a.txt => EXDEV
free-space on=alt as=altfree
free-space as=mainfree
fill alt:big 64K
free-space as=mainfree is=$mainfree
unlink-backing alt:big
free-space on=alt is=$altfree
umount-backing alt
umount-backing alt => EINVAL
backing-ino b.txt is=$ino
`,
	// A daemon without a probe id reports that scan-close cannot scan.
	"no-probe-scan-close": `backing 1M
mount no-probe
crash
restart no-probe recovery=scan-close
recovery
`,
}

// host runs scenarios on the host kernel.
type host struct {
	daemon  string
	spawner *interp.Spawner
}

// run runs s in a fresh root and returns the result and the steps' log.
// Nothing may stay mounted under the root afterwards, and no process of
// the scenario may be left.
func (h *host) run(t *testing.T, s *script.Script) (interp.Result, string) {
	t.Helper()
	root := t.TempDir()
	t.Cleanup(func() { // before the root's removal
		interptest.CheckUnmounted(t, root)
		interptest.CheckNoProcesses(t, root)
	})
	var mu sync.Mutex
	var steps bytes.Buffer
	emit := func(ev events.Event) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(&steps, "  line %d: %s\n", ev.Line, ev.Detail)
	}
	res := interp.Run(context.Background(), s, interp.Env{Root: root, Daemon: h.daemon, Spawner: h.spawner, Emit: emit})
	mu.Lock()
	defer mu.Unlock()
	return res, steps.String()
}

// newHost returns a host to run scenarios on, or skips t where the host
// cannot run them as the guest does (requireHost, requirePassthrough).
func newHost(t *testing.T) *host {
	requireHost(t)
	if err := interptest.KeepFusectlMounted(t); err != nil {
		t.Fatal(err)
	}
	h := &host{daemon: interptest.BuildDaemon(t), spawner: interptest.StartSpawner(t)}
	requirePassthrough(t, h)
	return h
}

// requireHost skips t unless the host can run scenarios as the guest does:
// root, /dev/fuse, and an unpatched kernel (the expectations assume one).
func requireHost(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: scenarios mount tmpfs and FUSE and register backing files")
	}
	fuseabitest.RequireDevFuse(t)
	for claim, probe := range map[string]func() error{
		"close_all_ioctl":     fuseabi.HaveBackingCloseAll,
		"close_all_minus_one": fuseabi.HaveBackingCloseMinusOne,
		"inode_cache_flag":    func() error { return fuseabi.HaveInodeCache(fuseabi.InodeCacheBitV1) },
	} {
		if probe() == nil {
			t.Skipf("the host kernel has %s; the host expectations are for an unpatched kernel", claim)
		}
	}
}

// passthroughProbe mounts fusetestd and checks that passthrough was
// negotiated.
const passthroughProbe = "backing 1M\nmount\npassthrough\numount\n"

// requirePassthrough skips t when the host kernel does not negotiate FUSE
// passthrough, and fails it when the probe fails otherwise.
func requirePassthrough(t *testing.T, h *host) {
	s, err := script.Parse("passthrough-probe", "passthrough-probe", passthroughProbe)
	if err != nil {
		t.Fatal(err)
	}
	res, steps := h.run(t, s)
	if res.Verdict == verdict.Pass {
		return
	}
	if m := stepErrorRe.FindStringSubmatch(res.Detail); m != nil && m[1] == "passthrough" {
		t.Skipf("the host kernel does not negotiate FUSE passthrough: %s", res.Detail)
	}
	t.Fatalf("passthrough probe: %s: %s\nsteps:\n%s", res.Verdict, res.Detail, steps)
}
