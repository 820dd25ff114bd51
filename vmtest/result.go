package vmtest

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// ExitReason says how a run ended.
type ExitReason int

const (
	// GuestShutdown: the guest powered off (QMP SHUTDOWN reason
	// "guest-shutdown").
	GuestShutdown ExitReason = iota + 1
	// GuestReset: the guest rebooted, which ends QEMU under -no-reboot
	// (reason "guest-reset").
	GuestReset
	// GuestPanicked: the kernel panicked (GUEST_PANICKED from pvpanic, or a
	// reset right after "Kernel panic - not syncing" on the console).
	GuestPanicked
	// BootTimeout: no events.Hello within Timeouts.Boot.
	BootTimeout
	// SilenceTimeout: neither console output nor an event within
	// Timeouts.Silence.
	SilenceTimeout
	// OverallTimeout: the run exceeded Timeouts.Overall.
	OverallTimeout
	// QEMUFailed: QEMU could not start or exited on its own without a guest
	// shutdown (Result.QEMUStderr says why).
	QEMUFailed
	// Killed: VM.Kill, a cancelled context, or a host-side stop of QEMU.
	Killed
)

var exitNames = map[ExitReason]string{
	GuestShutdown:  "guest-shutdown",
	GuestReset:     "guest-reset",
	GuestPanicked:  "guest-panicked",
	BootTimeout:    "boot-timeout",
	SilenceTimeout: "silence-timeout",
	OverallTimeout: "overall-timeout",
	QEMUFailed:     "qemu-failed",
	Killed:         "killed",
}

// String returns a stable lower-case name such as "guest-shutdown".
func (r ExitReason) String() string {
	if s, ok := exitNames[r]; ok {
		return s
	}
	return fmt.Sprintf("exit(%d)", int(r))
}

// Timeout reports whether the run was stopped by one of the timeouts (a
// HANG verdict for the caller).
func (r ExitReason) Timeout() bool {
	return r == BootTimeout || r == SilenceTimeout || r == OverallTimeout
}

// Result describes a finished run.
type Result struct {
	// Accel is the accelerator of the run that counted (after any KVM
	// probe fallback); AccelNote says how it was chosen.
	Accel     Accel
	AccelNote string
	// Exit says how the run ended.
	Exit ExitReason
	// ShutdownReason is the reason of QMP's SHUTDOWN event ("guest-shutdown",
	// "guest-reset", "guest-panic", "host-qmp-quit", ...), "" if none came.
	ShutdownReason string
	// Err explains timeouts, failures and kills; nil when the guest ended
	// the run itself.
	Err error
	// BootToHello is the time from QEMU's start to the agent's hello, zero
	// if none came.
	BootToHello time.Duration
	// Wall is the time from Start to the end of cleanup.
	Wall time.Duration
	// Console is the serial console output of the run (capped at 64 MiB;
	// ConsoleTruncated tells). Feed it to splat.Scan.
	Console          []byte
	ConsoleTruncated bool
	// ConsoleLog is the console log file, if WithConsoleLog was given.
	ConsoleLog string
	// QEMUStderr is the tail of QEMU's standard error.
	QEMUStderr string
	// Argv is QEMU's command line (binary first) as it ran, under the
	// accelerator that counted; its socket paths were in a directory
	// removed since. Nil when QEMU did not get as far as a command line.
	Argv []string
	// Cmdline is the kernel command line.
	Cmdline string
}

// outcome is what the supervisor observed when QEMU was gone; classify
// turns it into an ExitReason.
type outcome struct {
	stop           ExitReason // set when we stopped QEMU (timeout, kill); 0 otherwise
	stopErr        error
	shutdownReason string // QMP SHUTDOWN reason
	panicked       bool   // QMP GUEST_PANICKED seen
	consoleEnd     consoleEnd
	waitErr        error // from exec.Cmd.Wait (nil: exit status 0)
	stderrTail     string
}

// classify decides the ExitReason and error of a run. Our own stop wins
// (a timeout stays a timeout even if the guest panicked while we quit it),
// then a panic, then the guest's shutdown reason, then QEMU's exit status.
func classify(o outcome) (ExitReason, error) {
	if o.stop != 0 {
		return o.stop, o.stopErr
	}
	if o.panicked || o.shutdownReason == "guest-panic" {
		return GuestPanicked, nil
	}
	switch o.shutdownReason {
	case "guest-shutdown":
		return GuestShutdown, nil
	case "guest-reset":
		if o.consoleEnd == consolePanic {
			return GuestPanicked, nil
		}
		return GuestReset, nil
	case "host-signal", "host-qmp-quit", "host-ui", "host-qmp-system-reset":
		return Killed, fmt.Errorf("qemu stopped from the host (%s)", o.shutdownReason)
	}
	if o.shutdownReason == "" && o.consoleEnd == consolePanic {
		return GuestPanicked, nil
	}
	if o.waitErr == nil && o.shutdownReason == "" {
		// No SHUTDOWN event reached us (QEMU ended around the QMP
		// handshake); the kernel's last words tell.
		switch o.consoleEnd {
		case consolePanic:
			return GuestPanicked, nil
		case consolePowerOff:
			return GuestShutdown, nil
		case consoleRestart:
			return GuestReset, nil
		}
	}
	msg := lastLine(o.stderrTail)
	var ee *exec.ExitError
	switch {
	case o.waitErr == nil && o.shutdownReason != "":
		return QEMUFailed, fmt.Errorf("qemu exited after shutdown reason %q", o.shutdownReason)
	case o.waitErr == nil:
		return QEMUFailed, errors.New("qemu exited without a shutdown event")
	case errors.As(o.waitErr, &ee) && msg != "":
		return QEMUFailed, fmt.Errorf("qemu: %s (%v)", msg, o.waitErr)
	}
	return QEMUFailed, fmt.Errorf("qemu: %w", o.waitErr)
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return strings.TrimSpace(s)
}

// consoleEnd is how the kernel said it was going down, if it did.
type consoleEnd int

const (
	consoleUnknown  consoleEnd = iota
	consolePanic               // "Kernel panic - not syncing"
	consolePowerOff            // "reboot: Power down"
	consoleRestart             // "reboot: Restarting system"
)

// lastWords classifies the end of a console log. A panic anywhere counts.
func lastWords(console []byte) consoleEnd {
	switch {
	case bytes.Contains(console, []byte("Kernel panic - not syncing")):
		return consolePanic
	case bytes.Contains(console, []byte("reboot: Power down")):
		return consolePowerOff
	case bytes.Contains(console, []byte("reboot: Restarting system")):
		return consoleRestart
	}
	return consoleUnknown
}
