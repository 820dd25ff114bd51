package vmtest

// The supervisor is tested against a fake QEMU: this test binary, run
// through a wrapper script, speaks QMP on the -qmp socket, connects to the
// event socket like QEMU's client chardev, prints a console and ends the way
// the mode says. It costs no CPU worth mentioning and needs no kernel.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"fusevm/events"
)

const fakeEnv = "VMTEST_FAKE_QEMU"

func TestMain(m *testing.M) {
	if mode := os.Getenv(fakeEnv); mode != "" {
		os.Exit(fakeQEMU(mode, os.Args[1:]))
	}
	code := m.Run()
	cleanupTestImages()
	os.Exit(code)
}

// fakeQEMUBinary writes a wrapper that runs this binary as a fake QEMU.
func fakeQEMUBinary(t testing.TB, mode string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "qemu-fake")
	script := fmt.Sprintf("#!/bin/sh\n%s=%s exec %q \"$@\"\n", fakeEnv, mode, exe)
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// fakeQEMU is the fake's main.
func fakeQEMU(mode string, args []string) int {
	if len(args) > 0 && args[0] == "--version" {
		fmt.Println("QEMU emulator version 7.2.99 (fake)")
		return 0
	}
	var qmpPath, evPath, accel string
	for i := 0; i+1 < len(args); i++ {
		switch v := args[i+1]; args[i] {
		case "-qmp":
			qmpPath, _, _ = strings.Cut(strings.TrimPrefix(v, "unix:"), ",")
		case "-chardev":
			if p, ok := strings.CutPrefix(v, "socket,id=ev,path="); ok {
				evPath = p
			}
		case "-accel":
			accel = v
		}
	}
	if mode == "fail" {
		fmt.Fprintln(os.Stderr, "qemu-system-x86_64: -kernel /nonexistent: could not open kernel file")
		return 1
	}
	ev, err := net.Dial("unix", evPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "qemu-system-x86_64: -chardev socket,id=ev: %v\n", err)
		return 1
	}
	if mode == "interactive" {
		return fakeInteractive(ev, args)
	}
	stubborn := mode == "stubborn"
	mon := startFakeMonitor(qmpPath, !stubborn)
	if stubborn {
		signal.Ignore(syscall.SIGTERM)
	} else {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		go func() {
			<-sig
			mon.event("SHUTDOWN", `{"guest": false, "reason": "host-signal"}`)
			os.Exit(0)
		}()
	}
	if mode == "kvm-hang" {
		if strings.HasPrefix(accel, "kvm") {
			select {} // the guest hangs after the firmware: no output
		}
		mode = "boot"
	}

	// The guest starts a little after the host's QMP handshake, as a real
	// guest takes far longer to boot than the host to connect. (go-qemu's
	// Connect reads the handshake through a buffered decoder that it then
	// drops, so an event sent right behind the handshake reply would be
	// lost; vmtest then falls back on the console's last words.)
	select {
	case <-mon.connected:
	case <-time.After(3 * time.Second):
	}
	time.Sleep(50 * time.Millisecond)
	console := func(s string) { fmt.Print(strings.ReplaceAll(s, "\n", "\r\n")) }
	w := events.NewWriter(ev)
	hello := func() { w.Write(events.Event{Time: time.Now(), Kind: events.Hello, Detail: "fake"}) }
	console("Linux version 7.3.4-fake (fake@host) #1 SMP\n")
	switch mode {
	case "boot":
		ev.Write([]byte("this is not json\n"))
		hello()
		ev.(*net.UnixConn).SetReadDeadline(time.Now().Add(5 * time.Second))
		line, _ := bufio.NewReader(ev).ReadString('\n')
		w.Write(events.Event{Kind: events.Log, Detail: strings.TrimSpace(line)})
		w.Write(events.Event{Kind: events.Done})
		console("reboot: Power down\n")
		mon.event("SHUTDOWN", `{"guest": true, "reason": "guest-shutdown"}`)
		return 0
	case "panic":
		hello()
		console("Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100\n")
		mon.event("GUEST_PANICKED", `{"action": "poweroff"}`)
		mon.event("SHUTDOWN", `{"guest": true, "reason": "guest-panic"}`)
		return 1
	case "panic-reset":
		hello()
		console("Kernel panic - not syncing: Fatal exception\n")
		mon.event("SHUTDOWN", `{"guest": true, "reason": "guest-reset"}`)
		return 0
	case "nohello":
		// A child in our process group, to check the whole group dies.
		exec.Command("sleep", "300").Start()
		for i := 0; ; i++ {
			console(fmt.Sprintf("[%5d.000000] still booting\n", i))
			time.Sleep(100 * time.Millisecond)
		}
	case "silent-after-hello", "stubborn":
		hello()
		select {}
	case "chatty":
		hello()
		for {
			console("busy\n")
			time.Sleep(50 * time.Millisecond)
		}
	}
	fmt.Fprintf(os.Stderr, "fake qemu: unknown mode %q\n", mode)
	return 2
}

// fakeMonitor is a one-client QMP server.
type fakeMonitor struct {
	mu        sync.Mutex
	conn      net.Conn
	connected chan struct{}
}

func startFakeMonitor(path string, obeyQuit bool) *fakeMonitor {
	m := &fakeMonitor{connected: make(chan struct{})}
	ln, err := net.Listen("unix", path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "fake qmp: %v\n", err)
		os.Exit(1)
	}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		m.conn = c
		m.send(`{"QMP": {"version": {"qemu": {"micro": 99, "minor": 2, "major": 7}, "package": "fake"}, "capabilities": ["oob"]}}`)
		dec := json.NewDecoder(c) // QEMU parses a stream, not lines
		for {
			var cmd struct {
				Execute string `json:"execute"`
			}
			if dec.Decode(&cmd) != nil {
				return
			}
			if cmd.Execute == "quit" && !obeyQuit {
				continue // a wedged QEMU: no answer
			}
			m.send(`{"return": {}}`)
			if cmd.Execute == "qmp_capabilities" {
				// Like QEMU: no events before the handshake.
				close(m.connected)
			}
			if cmd.Execute == "quit" {
				m.event("SHUTDOWN", `{"guest": false, "reason": "host-qmp-quit"}`)
				os.Exit(0)
			}
		}
	}()
	return m
}

func (m *fakeMonitor) send(s string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fmt.Fprintf(m.conn, "%s\r\n", s)
}

func (m *fakeMonitor) event(name, data string) {
	select {
	case <-m.connected:
	case <-time.After(3 * time.Second):
		return
	}
	m.send(fmt.Sprintf(`{"timestamp": {"seconds": %d, "microseconds": 0}, "event": %q, "data": %s}`, time.Now().Unix(), name, data))
}

// withKVMProbe shortens the KVM probe and pretends /dev/kvm is usable.
func withKVMProbe(d time.Duration) Option {
	return func(c *config) {
		c.kvmProbe = d
		c.kvmUsable = func() error { return nil }
	}
}

// fakeFiles returns a kernel and an initramfs path that exist.
func fakeFiles(t testing.TB) []Option {
	dir := t.TempDir()
	k, i := filepath.Join(dir, "bzImage"), filepath.Join(dir, "initramfs.cpio")
	os.WriteFile(k, nil, 0o644)
	os.WriteFile(i, nil, 0o644)
	return []Option{WithKernel(k), WithInitramfs(i), WithProbeCache("")}
}

// runFake boots the fake in mode and drives it like a host: a line is
// sent after the hello. It returns the result and the events seen.
func runFake(t *testing.T, ctx context.Context, mode string, opts ...Option) (*VM, *Result, []events.Event) {
	t.Helper()
	opts = append(append(fakeFiles(t), WithQEMU(fakeQEMUBinary(t, mode)), WithAccel(AccelTCG)), opts...)
	vm, err := Start(ctx, opts...)
	if err != nil {
		t.Fatal(err)
	}
	var got []events.Event
	for e := range vm.Events() {
		got = append(got, e)
		if e.Kind == events.Hello {
			// Only the "boot" guest reads; others may be gone already, and
			// Send must then fail rather than hang.
			if err := vm.Send(map[string]string{"ping": mode}); err != nil && mode == "boot" {
				t.Errorf("Send: %v", err)
			}
		}
	}
	res := vm.Wait()
	assertNoProcess(t, vm)
	return vm, res, got
}

// assertNoProcess fails if a process (zombies aside) of any QEMU process
// group of vm is still alive. A process sent SIGKILL may take a moment to
// die on a loaded machine, so one still there is looked for again for a
// few seconds before it counts.
func assertNoProcess(t *testing.T, vm *VM) {
	t.Helper()
	vm.mu.Lock()
	pids := append([]int(nil), vm.pids...)
	vm.mu.Unlock()
	if len(pids) == 0 {
		t.Error("no qemu process was started")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		alive := liveInGroups(pids)
		if len(alive) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, a := range alive {
				t.Errorf("process of qemu group still alive: %s", a)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// liveInGroups returns the stat lines of the processes, zombies aside, in
// the process groups pgids.
func liveInGroups(pgids []int) []string {
	var alive []string
	procs, _ := os.ReadDir("/proc")
	for _, d := range procs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		pgid, err := unix.Getpgid(pid)
		if err != nil || !slices.Contains(pgids, pgid) {
			continue
		}
		// Only now read its stat: a zombie waiting for its reaper is gone.
		b, _ := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if _, rest, ok := strings.Cut(string(b), ") "); ok && strings.HasPrefix(rest, "Z") {
			continue
		}
		if len(b) > 0 {
			alive = append(alive, strings.TrimSpace(string(b)))
		}
	}
	return alive
}

func TestFakeBoot(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "console.log")
	var stream strings.Builder
	var mu sync.Mutex
	_, res, evs := runFake(t, context.Background(), "boot",
		WithConsoleLog(logPath), WithConsoleStream(lockedWriter{&mu, &stream}), WithWorkDir(filepath.Join(dir, "work")))
	if res.Exit != GuestShutdown || res.Err != nil || res.ShutdownReason != "guest-shutdown" {
		t.Fatalf("exit %v (%v), shutdown reason %q; stderr: %s", res.Exit, res.Err, res.ShutdownReason, res.QEMUStderr)
	}
	if res.Accel != AccelTCG || res.BootToHello <= 0 || res.Wall < res.BootToHello {
		t.Errorf("accel %v, boot-to-hello %v, wall %v", res.Accel, res.BootToHello, res.Wall)
	}
	// The command line as it ran is recorded, for fusevm repro and humans.
	if len(res.Argv) < 10 || !slices.Contains(res.Argv, "-kernel") || res.Cmdline != BaseCmdline || !slices.Contains(res.Argv, res.Cmdline) {
		t.Errorf("argv %q, cmdline %q: want the command line QEMU ran", res.Argv, res.Cmdline)
	}
	var kinds []string
	echoed := false
	for _, e := range evs {
		kinds = append(kinds, string(e.Kind))
		if e.Kind == events.Log && e.Detail == `{"ping":"boot"}` {
			echoed = true
		}
	}
	if !echoed || len(evs) != 4 || evs[0].Kind != events.Log || !strings.Contains(evs[0].Detail, "bad line") || evs[1].Kind != events.Hello {
		t.Errorf("events %v (%+v): want a bad-line log, hello, the echo, done", kinds, evs)
	}
	disk, _ := os.ReadFile(logPath)
	mu.Lock()
	streamed := stream.String()
	mu.Unlock()
	if !strings.Contains(string(res.Console), "reboot: Power down") || string(disk) != string(res.Console) || streamed != string(res.Console) {
		t.Errorf("console: result %q, file %q, stream %q", res.Console, disk, streamed)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "work")); len(ents) != 0 {
		t.Errorf("work dir not cleaned: %v", ents)
	}
}

// lockedWriter serialises writes to w with mu, so a test can read what a
// VM streamed while it runs.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

func TestFakeTimeouts(t *testing.T) {
	tests := []struct {
		mode     string
		timeouts Timeouts
		want     ExitReason
		max      time.Duration
	}{
		{"nohello", Timeouts{Boot: 700 * time.Millisecond, Silence: 5 * time.Second}, BootTimeout, 4 * time.Second},
		{"silent-after-hello", Timeouts{Boot: 5 * time.Second, Silence: 700 * time.Millisecond}, SilenceTimeout, 4 * time.Second},
		{"chatty", Timeouts{Silence: 5 * time.Second, Overall: time.Second}, OverallTimeout, 4 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			_, res, _ := runFake(t, context.Background(), tt.mode, WithTimeouts(tt.timeouts))
			if res.Exit != tt.want || res.Err == nil {
				t.Fatalf("exit %v (%v), want %v", res.Exit, res.Err, tt.want)
			}
			if !res.Exit.Timeout() || res.Wall > tt.max {
				t.Errorf("wall %v, want under %v", res.Wall, tt.max)
			}
			if res.ShutdownReason != "host-qmp-quit" {
				t.Errorf("shutdown reason %q: QEMU should have been stopped with QMP quit", res.ShutdownReason)
			}
		})
	}
}

func TestFakePanic(t *testing.T) {
	for _, mode := range []string{"panic", "panic-reset"} {
		t.Run(mode, func(t *testing.T) {
			_, res, _ := runFake(t, context.Background(), mode)
			if res.Exit != GuestPanicked || res.Err != nil {
				t.Errorf("exit %v (%v), want guest-panicked", res.Exit, res.Err)
			}
		})
	}
}

func TestFakeQEMUFails(t *testing.T) {
	_, res, _ := runFake(t, context.Background(), "fail")
	if res.Exit != QEMUFailed || res.Err == nil || !strings.Contains(res.Err.Error(), "could not open kernel file") ||
		!strings.Contains(res.QEMUStderr, "could not open") {
		t.Errorf("exit %v (%v), stderr %q", res.Exit, res.Err, res.QEMUStderr)
	}
}

func TestFakeKillAndCancel(t *testing.T) {
	t.Run("kill", func(t *testing.T) {
		opts := append(fakeFiles(t), WithQEMU(fakeQEMUBinary(t, "silent-after-hello")), WithAccel(AccelTCG))
		vm, err := Start(context.Background(), opts...)
		if err != nil {
			t.Fatal(err)
		}
		for e := range vm.Events() {
			if e.Kind == events.Hello {
				vm.Kill()
				vm.Kill() // idempotent
			}
		}
		res := vm.Wait()
		if res.Exit != Killed || res.ShutdownReason != "host-qmp-quit" {
			t.Errorf("exit %v (%v), reason %q", res.Exit, res.Err, res.ShutdownReason)
		}
		if vm.Wait() != res {
			t.Error("second Wait returned another result")
		}
		if err := vm.Send("late"); !errors.Is(err, ErrNotRunning) && err == nil {
			t.Errorf("Send after exit: %v", err)
		}
		assertNoProcess(t, vm)
	})
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		_, res, _ := runFake(t, ctx, "silent-after-hello")
		if res.Exit != Killed || !errors.Is(res.Err, context.DeadlineExceeded) {
			t.Errorf("exit %v (%v)", res.Exit, res.Err)
		}
	})
	t.Run("stubborn", func(t *testing.T) {
		// QMP quit unanswered and SIGTERM ignored: SIGKILL after the grace.
		opts := append(fakeFiles(t), WithQEMU(fakeQEMUBinary(t, "stubborn")), WithAccel(AccelTCG))
		vm, err := Start(context.Background(), opts...)
		if err != nil {
			t.Fatal(err)
		}
		for e := range vm.Events() {
			if e.Kind == events.Hello {
				vm.Kill()
			}
		}
		res := vm.Wait()
		if res.Exit != Killed || res.Wall < quitGrace || res.Wall > quitGrace+3*time.Second {
			t.Errorf("exit %v (%v) after %v", res.Exit, res.Err, res.Wall)
		}
		assertNoProcess(t, vm)
	})
}

func TestFakeKVMProbe(t *testing.T) {
	cache := filepath.Join(t.TempDir(), "kvm-probe.json")
	qemu := fakeQEMUBinary(t, "kvm-hang")
	opts := append(fakeFiles(t), WithQEMU(qemu), WithProbeCache(cache), withKVMProbe(300*time.Millisecond))

	vm, res := bootToShutdown(t, opts)
	assertNoProcess(t, vm)
	if res.Accel != AccelTCG || res.Exit != GuestShutdown || len(vm.pids) != 2 || !strings.Contains(res.AccelNote, "fell back") {
		t.Fatalf("first run: accel %v (%s), exit %v (%v), %d qemu runs", res.Accel, res.AccelNote, res.Exit, res.Err, len(vm.pids))
	}
	b, _ := os.ReadFile(cache)
	if !strings.Contains(string(b), `"kvm": "broken"`) || !strings.Contains(string(b), "7.2.99 (fake)") {
		t.Errorf("cache after a silent KVM boot:\n%s", b)
	}

	// The cached answer is used: no second probe.
	vm, res = bootToShutdown(t, opts)
	if res.Accel != AccelTCG || len(vm.pids) != 1 || !strings.Contains(res.AccelNote, "probe cache") {
		t.Errorf("second run: accel %v (%s), %d qemu runs", res.Accel, res.AccelNote, len(vm.pids))
	}
}

func TestFakeKVMProbeWorks(t *testing.T) {
	cache := filepath.Join(t.TempDir(), "kvm-probe.json")
	opts := append(fakeFiles(t), WithQEMU(fakeQEMUBinary(t, "boot")), WithProbeCache(cache), withKVMProbe(5*time.Second))
	for run := 0; run < 2; run++ {
		vm, res := bootToShutdown(t, opts)
		if res.Accel != AccelKVM || res.Exit != GuestShutdown || len(vm.pids) != 1 {
			t.Errorf("run %d: accel %v (%s), exit %v", run, res.Accel, res.AccelNote, res.Exit)
		}
		if run == 1 && !strings.Contains(res.AccelNote, "probe cache") {
			t.Errorf("run 1 did not use the cache: %s", res.AccelNote)
		}
	}
}

// bootToShutdown starts a VM, answers its hello and waits for its end.
func bootToShutdown(t *testing.T, opts []Option) (*VM, *Result) {
	t.Helper()
	vm, err := Start(context.Background(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	for e := range vm.Events() {
		if e.Kind == events.Hello {
			vm.Send("x")
		}
	}
	return vm, vm.Wait()
}

func TestStartErrors(t *testing.T) {
	if _, err := Start(context.Background(), WithKernel("/nonexistent/bzImage"), WithInitramfs("/nonexistent/i")); err == nil {
		t.Error("Start with a missing kernel succeeded")
	}
	opts := append(fakeFiles(t), WithQEMU("/nonexistent/qemu"))
	if _, err := Start(context.Background(), opts...); err == nil || !strings.Contains(err.Error(), "qemu") {
		t.Errorf("Start with a missing qemu: %v", err)
	}
}

// A boot timeout shorter than the probe window still counts as a failed
// KVM probe, not as a guest that never said hello.
func TestFakeKVMProbeShortBoot(t *testing.T) {
	opts := append(fakeFiles(t), WithQEMU(fakeQEMUBinary(t, "kvm-hang")), withKVMProbe(5*time.Second),
		WithTimeouts(Timeouts{Boot: time.Second}))
	vm, res := bootToShutdown(t, opts)
	assertNoProcess(t, vm)
	if res.Accel != AccelTCG || res.Exit != GuestShutdown || res.Wall > 4*time.Second {
		t.Errorf("accel %v (%s), exit %v (%v), wall %v", res.Accel, res.AccelNote, res.Exit, res.Err, res.Wall)
	}
}
