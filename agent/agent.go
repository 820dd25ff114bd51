// Package agent is the guest's /init. It mounts the pseudo filesystems,
// loads the kernel modules the image carries, mounts fusectl, says hello
// to the host on the events port, receives the plan (scenario scripts and
// the kernel's claims), runs each scenario with the interpreter, marks
// scenario boundaries on the kernel console (so the host's splat scanner
// can attribute a splat), reports results, and powers the VM off.
//
// Between the plan and the first scenario it probes which of the series'
// interfaces the kernel has (package fuseabi) and reports them in a
// Features event, for the host to compare with the claims.
//
// It runs inside the guest, so it imports no host package: only the shared
// leaves (the event schema, the verdicts, the FUSE interface) and the
// scenario interpreter. The fusevm binary runs Main when it
// is started as /init (see cmd/fusevm), so that one static binary is both
// the host CLI and the guest's programs; cmd/fusevm-agent is the same
// entry point on its own.
package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"fusevm/events"
	"fusevm/fuseabi"
	"fusevm/guestshell"
	"fusevm/scenarios/interp"
	"fusevm/scenarios/script"
	"fusevm/verdict"

	"golang.org/x/sys/unix"
)

// Main runs the agent with the command line args (without the program
// name) and returns an exit status. As the guest's /init it never returns:
// it powers the VM off, also after an error, which it writes to the
// kernel log first. With the first argument "spawner" it is the process
// spawner instead (see interp.Spawner), which returns once its stdin
// closes. Anywhere but PID 1 it refuses to run: it mounts filesystems over
// /dev, /tmp and /run and powers the machine off.
func Main(args []string) int {
	if len(args) > 0 && args[0] == spawnerArg {
		if err := interp.ServeSpawner(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "fusevm-agent spawner:", err)
			return 1
		}
		return 0
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "fusevm-agent: not PID 1: the agent runs only as a fusevm guest's /init")
		return 2
	}
	if err := run(); err != nil {
		kmsg(events.AgentError + err.Error())
		fmt.Fprintln(os.Stderr, "fusevm-agent:", err)
	}
	unix.Sync()
	err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	fmt.Fprintln(os.Stderr, "fusevm-agent: power off:", err)
	return 1
}

func run() error {
	if err := mountAll(pseudoFS); err != nil {
		return err
	}
	if err := loadModules("/" + events.ModulesFile); err != nil {
		return err
	}
	if err := mountAll(fuseFS); err != nil {
		return err
	}
	port, err := openPort()
	if err != nil {
		return err
	}
	out := &sender{w: events.NewWriter(port)}
	var uts unix.Utsname
	unix.Uname(&uts)
	if err := out.send(events.Event{Time: time.Now(), Kind: events.Hello, Detail: unix.ByteSliceToString(uts.Release[:])}); err != nil {
		return err
	}
	spawner, err := interp.StartSpawner("/init", spawnerArg)
	if err != nil {
		return fmt.Errorf("start spawner: %w", err)
	}
	var plan events.Plan
	if err := events.NewReader(port).Read(&plan); err != nil {
		return fmt.Errorf("read plan: %w", err)
	}
	features := probeFeatures(plan.Params)
	kmsg("fusevm: features:" + featureStates(features))
	if err := out.send(events.Event{Time: time.Now(), Kind: events.Features, Features: features}); err != nil {
		return err
	}
	if guestshell.Requested() {
		return guestshell.Main(plan, spawner, scenarioRoot, daemonBinary)
	}
	claims := map[string]bool{}
	for _, c := range plan.Claims {
		claims[c] = true
	}
	for _, sc := range plan.Scenarios {
		// Steps are emitted from inside the interpreter, which cannot
		// stop on a write error; the sender keeps the first one, and it
		// ends the run before the scenario's end is reported.
		emit := func(ev events.Event) {
			ev.Time, ev.Scenario = time.Now(), sc.Name
			out.send(ev)
		}
		emit(events.Event{Kind: events.ScenarioStart})
		if err := out.failed(); err != nil {
			return err
		}
		taintBefore := taint()
		kmsg("fusevm: scenario " + sc.Name + " start")
		res := runScenario(sc, claims, plan.Params, spawner, emit)
		kmsg("fusevm: scenario " + sc.Name + " end")
		emit(events.Event{Kind: events.ScenarioEnd, Verdict: res.Verdict, Detail: res.Detail})
		if err := out.failed(); err != nil {
			return err
		}
		// A kernel that reported something is not trusted with the next
		// scenario: what it reports then may be the first report's
		// fallout, and lockdep stays off after its first report. The
		// host runs the rest in a fresh VM.
		if t := taint(); t&^taintBefore != 0 {
			kmsg(fmt.Sprintf("fusevm: scenario %s tainted the kernel (%d -> %d): the rest run in a fresh VM", sc.Name, taintBefore, t))
			break
		}
	}
	return out.send(events.Event{Time: time.Now(), Kind: events.Done})
}

// sender writes events to the host and keeps the first write error: an
// event that cannot be written ends the run (Main logs it to the console
// and powers off, so the host sees the agent stop early), it does not
// vanish. Once a write failed, nothing more is written.
type sender struct {
	w   *events.Writer
	err error
}

// send writes ev and returns the first write error of the run, if any.
func (s *sender) send(ev events.Event) error {
	if s.err == nil {
		if err := s.w.Write(ev); err != nil {
			s.err = fmt.Errorf("write %s event to the host: %w", ev.Kind, err)
		}
	}
	return s.err
}

// failed returns the first write error, if any.
func (s *sender) failed() error { return s.err }

// probeFeatures runs the fuseabi probes, one per feature events names, and
// returns their answers. The inode-cache flag is probed at the bit the plan
// gives (inode_cache_bit, set for the variants whose series has the flag),
// else at fuseabi.InodeCacheBitV1, the bit the daemon then uses too.
func probeFeatures(params map[string]string) []events.Feature {
	bit, bitErr := uint64(fuseabi.InodeCacheBitV1), error(nil)
	if s, ok := params["inode_cache_bit"]; ok {
		if bit, bitErr = strconv.ParseUint(s, 10, 5); bitErr != nil {
			bitErr = fmt.Errorf("plan parameter inode_cache_bit %q is no bit number of the 32-bit open flags", s)
		}
	}
	var out []events.Feature
	for _, name := range events.ProbedFeatures {
		var f events.Feature
		switch name {
		case events.FeatureCloseAll:
			f = feature(name, "FUSE_DEV_IOC_BACKING_CLOSE_ALL is there (it does not answer ENOTTY)", fuseabi.HaveBackingCloseAll())
		case events.FeatureCloseMinusOne:
			f = feature(name, "FUSE_DEV_IOC_BACKING_CLOSE(-1) closes all", fuseabi.HaveBackingCloseMinusOne())
		case events.FeatureInodeCache:
			if bitErr != nil {
				f = feature(name, "", bitErr)
				break
			}
			f = feature(name, fmt.Sprintf("FOPEN_PASSTHROUGH_INODE_CACHE (bit %d) reuses the inode's backing file", bit), fuseabi.HaveInodeCache(uint(bit)))
		default:
			f = events.Feature{Name: name, State: events.Unknown, Detail: "the agent has no probe for it"}
		}
		out = append(out, f)
	}
	return out
}

// feature turns a probe's answer (package fuseabi's convention) into a
// Feature: nil is Supported, described by supported; ErrNotSupported is
// NotSupported, described by what the probe saw; anything else is
// Unknown, with the error.
func feature(name, supported string, err error) events.Feature {
	switch {
	case err == nil:
		return events.Feature{Name: name, State: events.Supported, Detail: supported}
	case errors.Is(err, fuseabi.ErrNotSupported):
		return events.Feature{Name: name, State: events.NotSupported, Detail: strings.TrimSuffix(err.Error(), ": "+fuseabi.ErrNotSupported.Error())}
	default:
		return events.Feature{Name: name, State: events.Unknown, Detail: err.Error()}
	}
}

// featureStates is " name=state" for each feature, for the console.
func featureStates(fs []events.Feature) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, " %s=%s", f.Name, f.State)
	}
	return b.String()
}

// spawnerArg makes /init run as the process spawner (see interp.Spawner).
const spawnerArg = "spawner"

// The guest's scenario root (see interp.Env.Root) and daemon binary.
const (
	scenarioRoot = "/run/fusevm"
	daemonBinary = "/bin/fusetestd"
)

func runScenario(sc events.ScenarioSpec, claims map[string]bool, params map[string]string, spawner *interp.Spawner, emit func(events.Event)) interp.Result {
	s, err := script.Parse(sc.Name, sc.Name, sc.Script)
	if err != nil {
		return interp.Result{Verdict: verdict.Fail, Detail: "script: " + err.Error()}
	}
	return interp.Run(context.Background(), s, interp.Env{Claims: claims, Params: params, Root: scenarioRoot, Daemon: daemonBinary, Spawner: spawner, Emit: emit})
}

// mount is a filesystem the agent mounts.
type mount struct{ src, dst, fstype string }

// pseudoFS are mounted first; fuseFS once the modules are loaded (fusectl
// comes with FUSE, which may be a module).
var (
	pseudoFS = []mount{
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
		{"devtmpfs", "/dev", "devtmpfs"},
		{"tmpfs", "/tmp", "tmpfs"},
		{"tmpfs", "/run", "tmpfs"},
	}
	fuseFS = []mount{{"fusectl", "/sys/fs/fuse/connections", "fusectl"}}
)

func mountAll(mounts []mount) error {
	for _, m := range mounts {
		os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.fstype, 0, ""); err != nil && err != unix.EBUSY {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.dst, err)
		}
	}
	return nil
}

// loadModules loads the kernel modules the image lists in list, in order;
// a module already loaded is fine. No list means everything is built in.
func loadModules(list string) error {
	data, err := os.ReadFile(list)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, path := range strings.Fields(string(data)) {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("load module: %w", err)
		}
		err = unix.FinitModule(int(f.Fd()), "", 0)
		f.Close()
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("load module %s: %w", filepath.Base(path), err)
		}
		kmsg("fusevm: loaded module " + filepath.Base(path))
	}
	return nil
}

// openPort finds the virtio-serial port named events.PortName.
func openPort() (*os.File, error) {
	// A KASAN kernel under TCG, beside another VM, has probed the
	// virtio PCI device as late as 12 s after /init started.
	deadline := time.Now().Add(60 * time.Second)
	for {
		names, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
		for _, n := range names {
			data, _ := os.ReadFile(n)
			if strings.TrimSpace(string(data)) == events.PortName {
				return os.OpenFile("/dev/"+filepath.Base(filepath.Dir(n)), os.O_RDWR, 0)
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("virtio port %s not found", events.PortName)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// taint is the kernel's taint mask (/proc/sys/kernel/tainted), 0 when
// it cannot be read.
func taint() uint64 {
	data, err := os.ReadFile("/proc/sys/kernel/tainted")
	if err != nil {
		return 0
	}
	t, _ := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	return t
}

// kmsg writes a line to the kernel log, so it lands on the console between
// the kernel's own messages.
func kmsg(line string) {
	f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		return
	}
	f.WriteString(line + "\n")
	f.Close()
}
