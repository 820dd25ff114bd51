package vmtest

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"fusevm/events"
)

// Machine is the QEMU machine type. The i440fx "pc" machine is used rather
// than q35: with -nodefaults it brings up fewer emulated devices (no ICH9
// AHCI controller, no PCIe root complex to enumerate), needs no PCIe/MMCONFIG
// support in a minimal kernel, and measured here it reached the agent's hello
// slightly sooner under TCG. Nothing in the harness needs PCIe.
const Machine = "pc"

// BaseCmdline is the fixed head of the kernel command line: the console on
// the first serial port; panic=-1 reboots at once on a panic, which ends QEMU
// because of -no-reboot (pvpanic reports the panic first); oops=panic turns
// an Oops into a panic; printk.devkmsg=on keeps the agent's scenario markers
// written to /dev/kmsg from being rate-limited. panic_on_warn is deliberately
// absent: a WARNING is attributed to the running scenario, not fatal.
// softlockup_panic=1 makes the soft-lockup detector end the VM: a CPU stuck
// in the kernel becomes a CRASH in seconds, not a scenario timeout;
// watchdog_thresh=5 reports it after 10 s, not 20. The rest only saves
// boot time under TCG (initcall_debug, BENCHMARKS.md "Boot"): pci=noacpi
// routes PCI interrupts by the BIOS's table instead of ACPI's interpreter,
// which took 0.35-0.65 s in the virtio-pci probe; pty.legacy_count=0
// registers none of the 256 BSD ptys (0.15-0.25 s); i8042.noaux and
// i8042.nokbd skip probing a PS/2 mouse and keyboard nobody uses.
const BaseCmdline = "console=ttyS0 panic=-1 oops=panic printk.devkmsg=on softlockup_panic=1 watchdog_thresh=5 pci=noacpi pty.legacy_count=0 i8042.noaux i8042.nokbd"

// Socket file names inside the work directory.
const (
	qmpSocketName   = "qmp.sock"
	eventSocketName = "events.sock"
)

// maxSocketPath is the usable length of sun_path on Linux.
const maxSocketPath = 107

// Argv returns the exact QEMU command line (binary first) that Start would
// run for opts. It needs a concrete accelerator (WithAccel(AccelKVM) or
// WithAccel(AccelTCG)) and WithWorkDir, whose path is used for the sockets
// as is; it starts nothing and touches no file.
func Argv(opts ...Option) ([]string, error) {
	c := newConfig(opts)
	if err := c.validate(); err != nil {
		return nil, err
	}
	if c.accel == AccelAuto {
		return nil, fmt.Errorf("vmtest: Argv needs a concrete accelerator, not %v", c.accel)
	}
	if c.workDir == "" {
		return nil, fmt.Errorf("vmtest: Argv needs WithWorkDir")
	}
	return c.argv(c.accel, c.workDir)
}

// argv builds the command line for accel with the sockets in dir.
func (c *config) argv(accel Accel, dir string) ([]string, error) {
	qmpPath := filepath.Join(dir, qmpSocketName)
	evPath := filepath.Join(dir, eventSocketName)
	for _, p := range []string{qmpPath, evPath} {
		if len(p) > maxSocketPath {
			return nil, fmt.Errorf("vmtest: socket path %s is longer than %d bytes: use a shorter WithWorkDir", p, maxSocketPath)
		}
	}
	var accelArgs []string
	switch accel {
	case AccelKVM:
		accelArgs = []string{"-accel", "kvm", "-cpu", "host"}
	case AccelTCG:
		// thread=multi: one host thread per vCPU, so both host cores work.
		accelArgs = []string{"-accel", "tcg,thread=multi", "-cpu", "max"}
	default:
		return nil, fmt.Errorf("vmtest: no command line for accelerator %v", accel)
	}
	cmdline := c.cmdline()

	a := []string{c.qemu,
		"-nodefaults", "-display", "none", "-no-reboot",
		"-machine", Machine,
	}
	a = append(a, accelArgs...)
	a = append(a,
		"-smp", strconv.Itoa(c.cpus),
		"-m", strconv.Itoa(c.memoryMB),
		"-kernel", c.kernel,
		"-initrd", c.initramfs,
		"-append", cmdline,
	)
	if c.interactive {
		// The serial console is the user's terminal, multiplexed with
		// QEMU's monitor (Ctrl-A c switches, Ctrl-A x quits).
		a = append(a,
			"-chardev", "stdio,id=con,mux=on,signal=off",
			"-serial", "chardev:con",
			"-mon", "chardev=con,mode=readline",
		)
	} else {
		// The serial console goes to QEMU's stdout, a pipe we read.
		a = append(a,
			"-chardev", "stdio,id=con,signal=off",
			"-serial", "chardev:con",
		)
	}
	a = append(a,
		// A guest panic is reported (GUEST_PANICKED) and ends QEMU.
		"-device", "pvpanic-pci",
		"-action", "panic=exit-failure",
		// QMP: QEMU listens, we connect once the socket appears.
		"-qmp", "unix:"+qemuEscape(qmpPath)+",server=on,wait=off",
		// Guest events: we listen before QEMU starts, QEMU connects. Port
		// 0 is kept for a console; ours is 1: two ports need 6 virtqueues
		// set up at boot, not the default 31 ports' 64.
		"-device", "virtio-serial-pci,id=vser0,max_ports=2",
		"-chardev", "socket,id=ev,path="+qemuEscape(evPath),
		"-device", "virtserialport,bus=vser0.0,chardev=ev,name="+events.PortName,
	)
	if c.gdbPort > 0 {
		// QEMU's gdb stub, and the CPUs stopped until gdb continues.
		a = append(a, "-gdb", fmt.Sprintf("tcp::%d", c.gdbPort), "-S")
	}
	return a, nil
}

// cmdline is the kernel command line: BaseCmdline, nokaslr under gdb (so
// vmlinux's addresses are the running kernel's), then WithAppend's.
func (c *config) cmdline() string {
	cmdline := BaseCmdline
	if c.gdbPort > 0 {
		cmdline += " nokaslr"
	}
	if len(c.appendArgs) > 0 {
		cmdline += " " + strings.Join(c.appendArgs, " ")
	}
	return cmdline
}

// Cmdline returns the kernel command line Start and Argv would give the
// kernel for opts.
func Cmdline(opts ...Option) string { return newConfig(opts).cmdline() }

// qemuEscape doubles commas, QEMU's escape inside an option value.
func qemuEscape(s string) string { return strings.ReplaceAll(s, ",", ",,") }
