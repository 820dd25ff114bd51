// Package agent is the guest's /init. It mounts the pseudo filesystems,
// loads the kernel modules the image carries, mounts fusectl, says hello
// to the host on the events port, receives the plan (scenario scripts and
// the kernel's claims), runs each scenario with the interpreter, marks
// scenario boundaries on the kernel console (so the host's splat scanner
// can attribute a splat), reports results, and powers the VM off.
//
// It runs inside the guest, so it imports no host package: only the event
// schema and the scenario interpreter. The fusevm binary runs Main when it
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
	"strings"
	"time"

	"fusevm/events"
	"fusevm/scenarios/interp"
	"fusevm/scenarios/script"

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
		kmsg("fusevm: agent error: " + err.Error())
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
	w := events.NewWriter(port)
	var uts unix.Utsname
	unix.Uname(&uts)
	w.Write(events.Event{Time: time.Now(), Kind: events.Hello, Detail: unix.ByteSliceToString(uts.Release[:])})
	spawner, err := interp.StartSpawner("/init", spawnerArg)
	if err != nil {
		return fmt.Errorf("start spawner: %w", err)
	}
	var plan events.Plan
	if err := events.NewReader(port).Read(&plan); err != nil {
		return fmt.Errorf("read plan: %w", err)
	}
	claims := map[string]bool{}
	for _, c := range plan.Claims {
		claims[c] = true
	}
	for _, sc := range plan.Scenarios {
		emit := func(ev events.Event) {
			ev.Time, ev.Scenario = time.Now(), sc.Name
			w.Write(ev)
		}
		emit(events.Event{Kind: events.ScenarioStart})
		kmsg("fusevm: scenario " + sc.Name + " start")
		res := runScenario(sc, claims, plan.Params, spawner, emit)
		kmsg("fusevm: scenario " + sc.Name + " end")
		emit(events.Event{Kind: events.ScenarioEnd, Verdict: res.Verdict, Detail: res.Detail})
	}
	w.Write(events.Event{Time: time.Now(), Kind: events.Done})
	return nil
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
		return interp.Result{Verdict: "FAIL", Detail: "script: " + err.Error()}
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
	deadline := time.Now().Add(10 * time.Second)
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
