package vmtest

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	exit1 := exitError(t, 1)
	tests := []struct {
		name    string
		o       outcome
		want    ExitReason
		wantErr string // substring; "" means nil
	}{
		{"poweroff", outcome{shutdownReason: "guest-shutdown"}, GuestShutdown, ""},
		{"reboot under -no-reboot", outcome{shutdownReason: "guest-reset"}, GuestReset, ""},
		{"pvpanic", outcome{panicked: true, shutdownReason: "guest-panic", waitErr: exit1}, GuestPanicked, ""},
		{"panic=-1 without pvpanic", outcome{shutdownReason: "guest-reset", consoleEnd: consolePanic}, GuestPanicked, ""},
		{"missed SHUTDOWN, power down printed", outcome{consoleEnd: consolePowerOff}, GuestShutdown, ""},
		{"missed SHUTDOWN, restart printed", outcome{consoleEnd: consoleRestart}, GuestReset, ""},
		{"boot timeout", outcome{stop: BootTimeout, stopErr: errors.New("no hello"), shutdownReason: "host-qmp-quit"}, BootTimeout, "no hello"},
		{"silence wins over a panic during quit", outcome{stop: SilenceTimeout, stopErr: errors.New("quiet"), panicked: true}, SilenceTimeout, "quiet"},
		{"overall timeout", outcome{stop: OverallTimeout, stopErr: errors.New("too long")}, OverallTimeout, "too long"},
		{"cancelled", outcome{stop: Killed, stopErr: context.Canceled, shutdownReason: "host-qmp-quit"}, Killed, "canceled"},
		{"killed from outside", outcome{shutdownReason: "host-signal"}, Killed, "host-signal"},
		{"qemu error", outcome{waitErr: exit1, stderrTail: "qemu-system-x86_64: -kernel /x: could not open\n"}, QEMUFailed, "could not open"},
		{"qemu vanished", outcome{}, QEMUFailed, "without a shutdown event"},
		{"start failure", outcome{stop: QEMUFailed, stopErr: errors.New("start qemu: not found")}, QEMUFailed, "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := classify(tt.o)
			if got != tt.want {
				t.Errorf("exit = %v, want %v", got, tt.want)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("err = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("err = %v, want it to mention %q", err, tt.wantErr)
			}
		})
	}
}

func TestExitReasonNames(t *testing.T) {
	for r := GuestShutdown; r <= Killed; r++ {
		if strings.HasPrefix(r.String(), "exit(") {
			t.Errorf("%d has no name", r)
		}
	}
	if !BootTimeout.Timeout() || !SilenceTimeout.Timeout() || !OverallTimeout.Timeout() || Killed.Timeout() {
		t.Error("Timeout() misclassifies")
	}
}

// exitError returns a real *exec.ExitError with the given status.
func exitError(t *testing.T, code int) error {
	t.Helper()
	err := exec.Command("sh", "-c", "exit 1").Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != code {
		t.Fatalf("sh exit: %v", err)
	}
	return err
}
