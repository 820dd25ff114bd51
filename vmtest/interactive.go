package vmtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/term"

	"fusevm/events"
)

// ResolveAccel picks a concrete accelerator for opts without booting
// anything: a requested one as it is; for AccelAuto, KVM when /dev/kvm
// opens and the probe cache (WithProbeCache) says KVM boots on this host,
// else TCG. A boot that cannot be probed (an interactive console, or CPUs
// stopped for gdb) uses it. The note says how it was chosen.
func ResolveAccel(ctx context.Context, opts ...Option) (Accel, string) {
	ch := newConfig(opts).chooseAccel(ctx)
	if ch.probe {
		return AccelTCG, "tcg: kvm has not been probed on this host yet (a `fusevm run` probes it)"
	}
	return ch.accel, ch.note
}

// Terminal is where an interactive VM's serial console goes: QEMU reads
// In and writes Out and Err. In is put back in the state it had when QEMU
// exits (QEMU puts a terminal in raw mode while it runs).
type Terminal struct {
	In       *os.File
	Out, Err io.Writer
}

// RunInteractive boots a VM whose serial console is the terminal t (see
// WithInteractive, which it adds), sends plan to the guest agent after its
// hello, and returns when QEMU exits. It has no timeouts: the user ends
// it, from the guest (powering off) or with QEMU's Ctrl-A x. onEvent, if
// set, sees every guest event. AccelAuto is resolved by ResolveAccel (no
// KVM probe); WithConsoleLog, WithConsoleStream and WithTimeouts do not
// apply. Cancelling ctx kills QEMU.
func RunInteractive(ctx context.Context, t Terminal, plan any, onEvent func(events.Event), opts ...Option) error {
	c := newConfig(append(opts[:len(opts):len(opts)], WithInteractive()))
	if err := c.validate(); err != nil {
		return err
	}
	for _, p := range []string{c.kernel, c.initramfs} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("vmtest: %w", err)
		}
	}
	if _, err := exec.LookPath(c.qemu); err != nil {
		return fmt.Errorf("vmtest: %s not found: install Debian's qemu-system-x86 package (apt-get install -y qemu-system-x86)", c.qemu)
	}
	accel := c.accel
	if accel == AccelAuto {
		accel, _ = ResolveAccel(ctx, opts...)
	}
	dir, err := os.MkdirTemp(c.workDir, "fusevm-vm-")
	if err != nil {
		return fmt.Errorf("vmtest: socket dir: %w", err)
	}
	defer os.RemoveAll(dir)
	argv, err := c.argv(accel, dir)
	if err != nil {
		return err
	}
	ln, err := net.Listen("unix", filepath.Join(dir, eventSocketName))
	if err != nil {
		return fmt.Errorf("vmtest: event socket: %w", err)
	}
	defer ln.Close()

	if t.In != nil && term.IsTerminal(int(t.In.Fd())) {
		if st, err := term.GetState(int(t.In.Fd())); err == nil {
			defer term.Restore(int(t.In.Fd()), st)
		}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = t.In, t.Out, t.Err
	// QEMU stays in our process group, the terminal's foreground one: in
	// a group of its own it would be stopped reading the terminal.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("vmtest: start %s: %w", argv[0], err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	served := make(chan struct{})
	go func() {
		defer close(served)
		serveInteractive(ln, plan, onEvent)
	}()
	select {
	case err = <-exited:
	case <-ctx.Done():
		cmd.Process.Kill()
		err = <-exited
		if err == nil {
			err = ctx.Err()
		}
	}
	ln.Close()
	select {
	case <-served:
	case <-time.After(drainTimeout):
	}
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("qemu: %w", err)
	}
	return err
}

// serveInteractive accepts QEMU's connection to the event socket, sends
// plan after the agent's hello and passes every event on until the guest
// or QEMU closes the port.
func serveInteractive(ln net.Listener, plan any, onEvent func(events.Event)) {
	conn, err := ln.Accept()
	if err != nil {
		return
	}
	defer conn.Close()
	w := events.NewWriter(conn)
	r := events.NewReader(conn)
	for {
		var ev events.Event
		err := r.Read(&ev)
		var syntax *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case err == nil:
		case errors.As(err, &syntax) || errors.As(err, &typ):
			continue // a malformed line: not an event
		default:
			return
		}
		if onEvent != nil {
			onEvent(ev)
		}
		if ev.Kind == events.Hello && plan != nil {
			if w.Write(plan) != nil {
				return
			}
		}
	}
}
