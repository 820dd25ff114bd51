package vmtest

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Accel selects the QEMU accelerator.
type Accel int

const (
	// AccelAuto uses KVM when /dev/kvm opens and the probe cache says KVM
	// boots on this host; with no cached answer it tries KVM and falls back
	// to TCG when the kernel stays silent. This is the default.
	AccelAuto Accel = iota
	// AccelKVM forces KVM.
	AccelKVM
	// AccelTCG forces QEMU's multi-threaded TCG emulation.
	AccelTCG
)

// String returns "auto", "kvm" or "tcg".
func (a Accel) String() string {
	switch a {
	case AccelAuto:
		return "auto"
	case AccelKVM:
		return "kvm"
	case AccelTCG:
		return "tcg"
	}
	return fmt.Sprintf("accel(%d)", int(a))
}

// ParseAccel is the inverse of Accel.String.
func ParseAccel(s string) (Accel, error) {
	switch s {
	case "auto", "":
		return AccelAuto, nil
	case "kvm":
		return AccelKVM, nil
	case "tcg":
		return AccelTCG, nil
	}
	return 0, fmt.Errorf("vmtest: unknown accelerator %q (want auto, kvm or tcg)", s)
}

// Timeouts bound a run. A zero field takes its default; a negative field
// disables that limit. Defaults are given for KVM and multiplied by
// TCGFactor under TCG; values set explicitly are used as given.
type Timeouts struct {
	// Boot limits the time from QEMU's start to the agent's events.Hello.
	Boot time.Duration
	// Silence limits a stretch with neither console output nor an event.
	Silence time.Duration
	// Overall limits the whole run, a KVM probe included.
	Overall time.Duration
}

// Default timeouts under KVM, and the factor applied to them under TCG.
const (
	DefaultBootTimeout    = 30 * time.Second
	DefaultSilenceTimeout = 60 * time.Second
	DefaultOverallTimeout = 10 * time.Minute
	TCGFactor             = 3
)

// kvmProbeWindow is how long a KVM guest may stay silent on the serial
// console before KVM is declared broken on this host.
const kvmProbeWindow = 8 * time.Second

// Option configures Start and Argv.
type Option func(*config)

type config struct {
	kernel        string
	initramfs     string
	appendArgs    []string
	cpus          int
	memoryMB      int
	consoleLog    string
	consoleStream io.Writer
	timeouts      Timeouts
	accel         Accel
	probeCache    string
	probeCacheSet bool
	qemu          string
	workDir       string
	gdbPort       int
	interactive   bool

	// Test hooks.
	kvmProbe  time.Duration
	kvmUsable func() error
}

func newConfig(opts []Option) *config {
	c := &config{
		cpus:      2,
		memoryMB:  512,
		qemu:      "qemu-system-x86_64",
		kvmProbe:  kvmProbeWindow,
		kvmUsable: kvmOpenable,
	}
	for _, o := range opts {
		o(c)
	}
	if !c.probeCacheSet {
		c.probeCache = DefaultProbeCache()
	}
	return c
}

func (c *config) validate() error {
	if c.kernel == "" {
		return fmt.Errorf("vmtest: no kernel image (WithKernel)")
	}
	if c.initramfs == "" {
		return fmt.Errorf("vmtest: no initramfs (WithInitramfs)")
	}
	if c.cpus < 1 {
		return fmt.Errorf("vmtest: %d CPUs: need at least 1", c.cpus)
	}
	if c.memoryMB < 64 {
		return fmt.Errorf("vmtest: %d MiB of memory: need at least 64", c.memoryMB)
	}
	if c.gdbPort < 0 || c.gdbPort > 65535 {
		return fmt.Errorf("vmtest: gdb port %d: want 1-65535", c.gdbPort)
	}
	return nil
}

// effectiveTimeouts returns the limits for accel (0 meaning none).
func (c *config) effectiveTimeouts(accel Accel) Timeouts {
	f := time.Duration(1)
	if accel == AccelTCG {
		f = TCGFactor
	}
	pick := func(v, def time.Duration) time.Duration {
		switch {
		case v < 0:
			return 0
		case v == 0:
			return def * f
		}
		return v
	}
	return Timeouts{
		Boot:    pick(c.timeouts.Boot, DefaultBootTimeout),
		Silence: pick(c.timeouts.Silence, DefaultSilenceTimeout),
		Overall: pick(c.timeouts.Overall, DefaultOverallTimeout),
	}
}

// WithKernel sets the kernel image (bzImage) to boot. Required.
func WithKernel(path string) Option { return func(c *config) { c.kernel = path } }

// WithInitramfs sets the initramfs (a cpio archive) to boot. Required.
func WithInitramfs(path string) Option { return func(c *config) { c.initramfs = path } }

// WithAppend adds arguments to the kernel command line, after the fixed
// BaseCmdline. May be repeated.
func WithAppend(args ...string) Option {
	return func(c *config) { c.appendArgs = append(c.appendArgs, args...) }
}

// WithCPUs sets the number of guest CPUs (default 2).
func WithCPUs(n int) Option { return func(c *config) { c.cpus = n } }

// WithMemoryMB sets the guest memory in MiB (default 512).
func WithMemoryMB(n int) Option { return func(c *config) { c.memoryMB = n } }

// WithConsoleLog writes the guest's serial console to path (truncated
// first). The console is also returned in Result.Console.
func WithConsoleLog(path string) Option { return func(c *config) { c.consoleLog = path } }

// WithConsoleStream copies the serial console to w as it arrives (for a
// verbose mode). Write errors on w are ignored; a blocking w stalls the
// guest's console.
func WithConsoleStream(w io.Writer) Option { return func(c *config) { c.consoleStream = w } }

// WithTimeouts sets the boot, silence and overall limits.
func WithTimeouts(t Timeouts) Option { return func(c *config) { c.timeouts = t } }

// WithAccel selects the accelerator (default AccelAuto).
func WithAccel(a Accel) Option { return func(c *config) { c.accel = a } }

// WithProbeCache sets the JSON file that records whether KVM boots on this
// host (default: DefaultProbeCache()). An empty path disables the cache, so
// AccelAuto probes KVM on every run.
func WithProbeCache(path string) Option {
	return func(c *config) { c.probeCache, c.probeCacheSet = path, true }
}

// WithQEMU sets the QEMU binary (default qemu-system-x86_64 from PATH).
func WithQEMU(binary string) Option { return func(c *config) { c.qemu = binary } }

// WithWorkDir sets the directory for the QMP and event sockets. Start makes
// a private subdirectory there and removes it on exit; Argv uses dir as is.
// The default is a fresh directory under os.TempDir().
func WithWorkDir(dir string) Option { return func(c *config) { c.workDir = dir } }

// WithGDB starts QEMU's gdb stub on TCP port port (-gdb tcp::PORT) with
// the CPUs stopped until gdb continues (-S), and boots the kernel with
// nokaslr, so the symbols of its vmlinux are where the kernel runs. The
// boot timeout should then be disabled: the guest waits for gdb.
func WithGDB(port int) Option { return func(c *config) { c.gdbPort = port } }

// WithInteractive makes the serial console the user's terminal: QEMU's
// stdio chardev is multiplexed with its monitor (-mon), so Ctrl-A x quits
// QEMU and Ctrl-A c switches to the monitor. Only RunInteractive boots
// such a command line.
func WithInteractive() Option { return func(c *config) { c.interactive = true } }

// DefaultProbeCache returns the default probe cache path,
// $XDG_CACHE_HOME/fusevm/kvm-probe.json (or its platform equivalent), or ""
// when there is no user cache directory.
func DefaultProbeCache() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "fusevm", "kvm-probe.json")
}
