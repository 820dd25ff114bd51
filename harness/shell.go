package harness

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"fusevm/events"
	"fusevm/guestshell"
	"fusevm/plan"
	"fusevm/scenarios"
	"fusevm/vmtest"
)

// Shell is an interactive boot of a kernel variant: `fusevm shell`.
type Shell struct {
	Variant   *plan.Variant
	Scenarios []scenarios.Scenario
	// GDBPort, if not 0, starts QEMU's gdb stub on that port, with the
	// CPUs stopped until gdb continues and the kernel booted with
	// nokaslr.
	GDBPort int
	// Terminal is the user's: the guest's serial console.
	Terminal vmtest.Terminal
	// Ready, if set, is told what the user needs before the VM starts.
	Ready func(ShellInfo)
}

// ShellInfo is what a shell boots, told before the boot.
type ShellInfo struct {
	Kernel, Vmlinux, Initramfs string
	Cmdline                    string
	Accel                      vmtest.Accel
	AccelNote                  string
	// GDB is the gdb command line that attaches to the stub ("" without
	// GDBPort); without a vmlinux (a prebuilt kernel) it has no symbols.
	GDB string
}

// interactive boots a VM on the user's terminal (vmtest.RunInteractive;
// tests replace it).
type interactive func(ctx context.Context, t vmtest.Terminal, plan any, onEvent func(events.Event), opts ...vmtest.Option) error

// Shell prepares the variant (built or taken from the cache, as for a
// run) and boots it with the kernel argument guestshell.Arg: the guest
// agent then gets the plan (the scenarios, the claims and parameters) and
// runs the shell on the serial console, the user's terminal, until the
// user powers it off.
func (h *Harness) Shell(ctx context.Context, sh Shell) error {
	v := sh.Variant
	info := kernelInfo(v)
	b, err := h.prepare(ctx, v, &info)
	if err != nil {
		h.failure(ctx, v, err)
		return err
	}
	probe := vmtest.WithProbeCache(filepath.Join(h.Cache, "kvm-probe.json"))
	accel, note := vmtest.ResolveAccel(ctx, vmtest.WithAccel(h.Accel), probe)
	opts := []vmtest.Option{
		vmtest.WithKernel(b.Kernel), vmtest.WithInitramfs(b.Initramfs),
		vmtest.WithAccel(accel), probe,
		vmtest.WithAppend(v.Boot.Cmdline...), vmtest.WithAppend(guestshell.Arg),
	}
	if v.Boot.CPUs > 0 {
		opts = append(opts, vmtest.WithCPUs(v.Boot.CPUs))
	}
	si := ShellInfo{Kernel: b.Kernel, Vmlinux: b.Vmlinux, Initramfs: b.Initramfs, Accel: accel, AccelNote: note}
	if sh.GDBPort != 0 {
		opts = append(opts, vmtest.WithGDB(sh.GDBPort))
		si.GDB = GDBCommand(b.Vmlinux, sh.GDBPort)
	}
	si.Cmdline = vmtest.Cmdline(opts...)
	p := events.Plan{Claims: v.Claims, Params: v.Params}
	for _, s := range sh.Scenarios {
		p.Scenarios = append(p.Scenarios, events.ScenarioSpec{Name: s.Name, Script: s.Text})
	}
	if sh.Ready != nil {
		sh.Ready(si)
	}
	run := h.interactive
	if run == nil {
		run = vmtest.RunInteractive
	}
	return run(ctx, sh.Terminal, p, nil, opts...)
}

// GDBCommand is the gdb command line that loads vmlinux's symbols and
// attaches to QEMU's gdb stub on port.
func GDBCommand(vmlinux string, port int) string {
	if vmlinux == "" {
		return fmt.Sprintf("gdb -ex 'target remote :%d'", port)
	}
	return fmt.Sprintf("gdb %s -ex 'target remote :%d'", shellQuote(vmlinux), port)
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// WriteBanner writes what the user of the shell needs before it boots
// (for Shell.Ready): the variant, the accelerator, the kernel and its
// command line, how to leave, and with GDBPort how to attach gdb.
func (sh Shell) WriteBanner(w io.Writer, si ShellInfo) {
	v := sh.Variant
	fmt.Fprintf(w, "==> shell: %s %s under %s (%s)\n", v.Kernel.Name, v.Label(), si.Accel, si.AccelNote)
	fmt.Fprintf(w, "    kernel %s\n    kernel command line: %s\n", si.Kernel, si.Cmdline)
	fmt.Fprintf(w, "    in the guest: help lists the commands, exit powers off; Ctrl-A x quits QEMU\n")
	if si.GDB != "" {
		fmt.Fprintf(w, "==> gdb: QEMU waits for gdb on port %d; in another terminal:\n    %s\n", sh.GDBPort, si.GDB)
		fmt.Fprintf(w, "    then \"continue\" (use hbreak for breakpoints before the kernel is up)\n")
		if si.Vmlinux == "" {
			fmt.Fprintf(w, "    (a prebuilt kernel has no vmlinux here: gdb gets no symbols)\n")
		}
	}
}
