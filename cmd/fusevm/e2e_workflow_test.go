package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"fusevm/kernel"
	"fusevm/report"
)

// failingScenario needs nothing, so it must PASS, but the baseline has no
// close-all ioctl: an unexpected FAIL of a scenario that is no built-in.
const failingScenario = `description: close-all answers ok
backing 16M
mount
ioctl close-all
umount
`

// TestEndToEndReportAndRepro runs the baseline with a cell not as
// expected, then checks what a kernel developer gets from it: the KTAP
// file through the kernel's parser, each VM's command line, the text
// report with the commands that reproduce the cell, and those commands.
func TestEndToEndReportAndRepro(t *testing.T) {
	needVM(t)
	fvm := filepath.Join(t.TempDir(), "closeall-ok.fvm")
	os.WriteFile(fvm, []byte(failingScenario), 0o644)
	out := t.TempDir()
	code, stdout, stderr := fusevm(t, "run", "--kernel", "debian-7.3", "--scenarios", "smoke-passthrough,"+fvm, "--out", out)
	if code != exitFail || !strings.Contains(stdout, "closeall-ok        FAIL!") || !strings.Contains(stdout, "not as expected:\n  debian-7.3 baseline / closeall-ok: FAIL, want PASS") {
		t.Fatalf("run: exit %d\n%s\n%s", code, stdout, stderr)
	}
	// The VM's exact command line, and the boot record repro uses.
	var vms []report.VM
	data, _ := os.ReadFile(filepath.Join(out, "vms.json"))
	if err := json.Unmarshal(data, &vms); err != nil || len(vms) != 1 || vms[0].Argv[0] != "qemu-system-x86_64" || !strings.HasSuffix(vms[0].Vmlinux, "/vmlinux") {
		t.Errorf("vms.json: %s (%v)", data, err)
	}
	run := readResults(t, out)
	if b := run.Kernels[0].Boot; b == nil || b.Kernel != vms[0].Kernel || b.Cmdline != vms[0].Cmdline {
		t.Errorf("boot record %+v, vms.json %+v", b, vms[0])
	}
	// results.ktap through the kernel's own parser, when a source is cached.
	found, _ := filepath.Glob(filepath.Join(kernel.DefaultCacheDir(), "src", "*", "linux", "tools", "testing", "kunit", "kunit.py"))
	if len(found) > 0 {
		kout, err := exec.Command("python3", found[0], "parse", filepath.Join(out, "results.ktap")).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(kout), "[FAILED] closeall-ok") || !strings.Contains(string(kout), "[PASSED] smoke-passthrough") || strings.Contains(string(kout), "[ERROR]") {
			t.Errorf("kunit.py parse: %v\n%s", err, kout)
		}
	}

	code, text, stderr := fusevm(t, "report", out, "--tested-by", "A U Thor <author@example.org>")
	if code != exitOK || strings.Contains(text, "Tested-by:") {
		t.Fatalf("report: exit %d\n%s\n%s", code, text, stderr)
	}
	abs, _ := filepath.Abs(out)
	for _, want := range []string{
		"fusevm repro " + abs,
		"debian-7.3/baseline/closeall-ok\n",
		filepath.Join(abs, "scenarios", "closeall-ok.fvm"),
		"line 4: ioctl close-all: got ENOTTY, want ok",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}

	// The unexpected cell again: still not as expected.
	code, stdout, stderr = fusevm(t, "repro", out, "closeall-ok")
	if code != exitFail || !strings.Contains(stdout, "debian-7.3/baseline/closeall-ok: FAIL in 1 of 1 run(s) (recorded FAIL, expected PASS)") {
		t.Errorf("repro closeall-ok: exit %d\n%s\n%s", code, stdout, stderr)
	}
	// An expected cell twice, flags after the operands.
	rdir := t.TempDir()
	code, stdout, stderr = fusevm(t, "repro", out, "baseline/smoke-passthrough", "--count", "2", "--out", rdir)
	if code != exitOK || !strings.Contains(stdout, "PASS in 2 of 2 run(s)") {
		t.Errorf("repro smoke-passthrough --count 2: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, f := range []string{"run1/console.log", "run2/vms.json", "results.json", "results.ktap"} {
		if _, err := os.Stat(filepath.Join(rdir, f)); err != nil {
			t.Error(err)
		}
	}
}

// terminal drives an interactive command through pipes.
type terminal struct {
	t   *testing.T
	in  io.WriteCloser
	mu  sync.Mutex
	out bytes.Buffer
}

func (c *terminal) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Write(p)
}

// await waits for s in the output (after from) and returns the offset
// after it.
func (c *terminal) await(s string, from int, limit time.Duration) int {
	c.t.Helper()
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		c.mu.Lock()
		text := c.out.String()
		c.mu.Unlock()
		if i := strings.Index(text[min(from, len(text)):], s); i >= 0 {
			return from + i + len(s)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t.Fatalf("no %q within %s; the console:\n%s", s, limit, c.out.String())
	return 0
}

// TestEndToEndShell boots the baseline into the guest's shell, runs a
// scenario and a step session in it, and powers it off. The agent must
// start the shell when the kernel command line asks (guestshell.Main).
func TestEndToEndShell(t *testing.T) {
	needVM(t)
	deps, err := exec.Command("go", "list", "-deps", "fusevm/agent").Output()
	if err != nil || !strings.Contains(string(deps), "fusevm/guestshell\n") {
		t.Skip("the agent does not call guestshell.Main yet (agent/agent.go)")
	}
	cmd := exec.Command(fusevmBin, "shell", "--kernel", "debian-7.3", "--scenarios", "smoke-passthrough")
	term := &terminal{t: t}
	cmd.Stdout, cmd.Stderr = term, term
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	term.in = in
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	at := term.await("fusevm> ", 0, 3*time.Minute)
	for _, step := range []struct{ cmd, want string }{
		{"run smoke-passthrough", "smoke-passthrough: PASS"},
		{"step backing 16M", "backing 16M => ok"},
		{"step mount", "mount => ok"},
		{"ls /run/fusevm", "mnt"},
		{"step ioctl close-all", "ioctl close-all => ENOTTY"},
		{"end", "step session ended"},
	} {
		fmt.Fprintln(in, step.cmd)
		at = term.await(step.want, at, time.Minute)
	}
	fmt.Fprintln(in, "exit")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("shell: %v\n%s", err, term.out.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("the VM did not power off after exit:\n%s", term.out.String())
	}
}
