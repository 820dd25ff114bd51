package main

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// called runs the fusevm binary under the program name argv0 (as the
// guest's /init and /bin/fusetestd run it) and returns its exit code,
// stdout and stderr.
func called(t *testing.T, argv0, stdin string, args ...string) (int, string, string) {
	t.Helper()
	return runCmd(t, &exec.Cmd{Path: fusevmBin, Args: append([]string{argv0}, args...), Stdin: strings.NewReader(stdin)})
}

// runCmd runs cmd and returns its exit code, stdout and stderr; it fails
// t when cmd cannot run at all.
func runCmd(t *testing.T, cmd *exec.Cmd) (int, string, string) {
	t.Helper()
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

// TestMultiCall picks the entry point by the program name: fusetestd's
// command line, the agent's process spawner, or the host CLI. The agent
// proper is not run: it would mount over /dev and power off.
func TestMultiCall(t *testing.T) {
	code, stdout, stderr := called(t, "/bin/fusetestd", "", "help")
	if code != 0 || !strings.HasPrefix(stdout, "fusetestd: a crash-recoverable FUSE passthrough daemon") {
		t.Errorf("fusetestd help: exit %d stdout %q stderr %q", code, stdout, stderr)
	}
	code, _, stderr = called(t, "fusetestd", "", "frobnicate")
	if code != 2 || !strings.HasPrefix(stderr, `fusetestd: unknown command "frobnicate"`) {
		t.Errorf("fusetestd frobnicate: exit %d stderr %q", code, stderr)
	}
	// The spawner starts what it is asked and answers with the pid; it
	// ends when its stdin closes.
	code, stdout, stderr = called(t, "/init", `{"args":["/bin/true"]}`+"\n", "spawner")
	var reply struct {
		PID   int    `json:"pid"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(stdout), &reply); code != 0 || err != nil || reply.PID <= 0 || reply.Error != "" {
		t.Errorf("init spawner: exit %d stdout %q stderr %q", code, stdout, stderr)
	}
	code, _, stderr = called(t, "/usr/local/bin/fusevm", "", "frobnicate")
	if code != exitUsage || !strings.Contains(stderr, `fusevm: unknown command "frobnicate"`) {
		t.Errorf("fusevm frobnicate: exit %d stderr %q", code, stderr)
	}
}
