package vmtest

// Tests and benchmarks against real QEMU and a real kernel, named by
// FUSEVM_TEST_KERNEL (a bzImage with ACPI, virtio console, pvpanic-pci,
// an 8250 console and devtmpfs). The initramfs is internal/testinit, built
// once per test process.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"fusevm/events"
	"fusevm/vmtest/splat"
)

const kernelEnv = "FUSEVM_TEST_KERNEL"

var testImages struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func cleanupTestImages() {
	if testImages.dir != "" {
		os.RemoveAll(testImages.dir)
	}
}

// testKernel returns the kernel under test, or skips.
func testKernel(tb testing.TB) string {
	tb.Helper()
	k := os.Getenv(kernelEnv)
	if k == "" {
		tb.Skipf("%s is not set: no kernel to boot (point it at a bzImage with ACPI, virtio console, pvpanic-pci, 8250 console, devtmpfs)", kernelEnv)
	}
	if _, err := os.Stat(k); err != nil {
		tb.Skipf("%s: %v", kernelEnv, err)
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		tb.Skipf("no qemu-system-x86_64: %v", err)
	}
	return k
}

// testInitramfs builds internal/testinit as /init into a newc cpio.
func testInitramfs(tb testing.TB) string {
	tb.Helper()
	testImages.once.Do(func() {
		dir, err := os.MkdirTemp("", "vmtest-initramfs-")
		if err != nil {
			testImages.err = err
			return
		}
		testImages.dir = dir
		bin := filepath.Join(dir, "init")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "fusevm/vmtest/internal/testinit")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
		if out, err := cmd.CombinedOutput(); err != nil {
			testImages.err = fmt.Errorf("build testinit: %v\n%s", err, out)
			return
		}
		data, err := os.ReadFile(bin)
		if err != nil {
			testImages.err = err
			return
		}
		var cpio bytes.Buffer
		w := newcWriter{w: &cpio}
		w.dir("dev")
		w.dir("proc")
		w.dir("sys")
		w.file("init", 0o755, data)
		w.trailer()
		testImages.path = filepath.Join(dir, "initramfs.cpio")
		testImages.err = os.WriteFile(testImages.path, cpio.Bytes(), 0o644)
	})
	if testImages.err != nil {
		tb.Fatal(testImages.err)
	}
	return testImages.path
}

// newcWriter writes the "newc" cpio format the kernel unpacks: a 110-byte
// ASCII header ("070701" and 13 eight-digit hex fields), the NUL-terminated
// name padded to 4 bytes, the data padded to 4 bytes.
type newcWriter struct {
	w   *bytes.Buffer
	ino int
}

func (c *newcWriter) entry(name string, mode uint32, data []byte) {
	c.ino++
	nlink := 1
	if mode&0o040000 != 0 {
		nlink = 2
	}
	fmt.Fprintf(c.w, "070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		c.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	c.w.WriteString(name)
	c.w.WriteByte(0)
	c.pad()
	c.w.Write(data)
	c.pad()
}

func (c *newcWriter) pad() {
	for c.w.Len()%4 != 0 {
		c.w.WriteByte(0)
	}
}

func (c *newcWriter) dir(name string)                            { c.entry(name, 0o040755, nil) }
func (c *newcWriter) file(name string, perm uint32, data []byte) { c.entry(name, 0o100000|perm, data) }
func (c *newcWriter) trailer()                                   { c.entry("TRAILER!!!", 0, nil) }

func TestNewcHeader(t *testing.T) {
	var b bytes.Buffer
	w := newcWriter{w: &b}
	w.file("init", 0o755, []byte("abc"))
	w.trailer()
	h := b.String()
	if len(h)%4 != 0 || !strings.HasPrefix(h, "070701") || h[110:115] != "init\x00" || h[116:119] != "abc" {
		t.Errorf("bad newc archive %q", h)
	}
	if mode := h[14:22]; mode != "000081ed" {
		t.Errorf("mode field %q, want 000081ed", mode)
	}
}

// tcgTimeouts are generous: the host may be busy building a kernel.
var tcgTimeouts = Timeouts{Boot: 90 * time.Second, Silence: 60 * time.Second, Overall: 3 * time.Minute}

func TestQEMUBoot(t *testing.T) {
	kernel := testKernel(t)
	initrd := testInitramfs(t)
	logPath := filepath.Join(t.TempDir(), "console.log")
	var stream bytes.Buffer
	var mu sync.Mutex
	vm, err := Start(context.Background(), WithKernel(kernel), WithInitramfs(initrd), WithAccel(AccelTCG),
		WithAppend("fusevm_test=echo"), WithConsoleLog(logPath), WithTimeouts(tcgTimeouts), WithProbeCache(""),
		WithConsoleStream(lockedWriter{&mu, &stream}))
	if err != nil {
		t.Fatal(err)
	}
	plan := events.Plan{Scenarios: []events.ScenarioSpec{{Name: "echo", Script: "noop"}}}
	var hello, echo, done bool
	for e := range vm.Events() {
		switch e.Kind {
		case events.Hello:
			hello = true
			if err := vm.Send(plan); err != nil {
				t.Errorf("Send: %v", err)
			}
		case events.Log:
			var got events.Plan
			if err := json.Unmarshal([]byte(e.Detail), &got); err == nil && len(got.Scenarios) == 1 && got.Scenarios[0].Name == "echo" {
				echo = true
			} else {
				t.Errorf("echo %q", e.Detail)
			}
		case events.Done:
			done = true
		}
	}
	res := vm.Wait()
	assertNoProcess(t, vm)
	t.Logf("accel %v, exit %v (%s), boot-to-hello %v, wall %v", res.Accel, res.Exit, res.ShutdownReason, res.BootToHello, res.Wall)
	if !hello || !echo || !done {
		t.Errorf("hello %v, echo %v, done %v", hello, echo, done)
	}
	if res.Exit != GuestShutdown && res.Exit != GuestReset {
		t.Errorf("exit %v (%v); stderr %s\nconsole:\n%s", res.Exit, res.Err, res.QEMUStderr, res.Console)
	}
	if res.Accel != AccelTCG || res.BootToHello <= 0 {
		t.Errorf("accel %v, boot-to-hello %v", res.Accel, res.BootToHello)
	}
	disk, _ := os.ReadFile(logPath)
	if !bytes.Contains(disk, []byte("Linux version")) || !bytes.Equal(disk, res.Console) {
		t.Errorf("console log file (%d bytes) differs from Result.Console (%d bytes)", len(disk), len(res.Console))
	}
	if r := splat.Scan(res.Console); len(r) != 0 {
		t.Errorf("splats on a clean boot: %+v", r)
	}
}

func TestQEMUBootTimeout(t *testing.T) {
	kernel := testKernel(t)
	initrd := testInitramfs(t)
	const boot = 8 * time.Second
	vm, err := Start(context.Background(), WithKernel(kernel), WithInitramfs(initrd), WithAccel(AccelTCG),
		WithAppend("fusevm_test=silent"), WithProbeCache(""),
		WithTimeouts(Timeouts{Boot: boot, Silence: time.Minute, Overall: time.Minute}))
	if err != nil {
		t.Fatal(err)
	}
	for range vm.Events() {
		t.Error("an event from a guest that never says hello")
	}
	res := vm.Wait()
	assertNoProcess(t, vm)
	t.Logf("exit %v (%v), reason %q, wall %v, stderr %q", res.Exit, res.Err, res.ShutdownReason, res.Wall, res.QEMUStderr)
	if res.Exit != BootTimeout {
		t.Errorf("exit %v (%v), want boot-timeout", res.Exit, res.Err)
	}
	if res.Wall < boot || res.Wall > boot+quitGrace+3*time.Second {
		t.Errorf("wall %v, want about %v", res.Wall, boot)
	}
	if !bytes.Contains(res.Console, []byte("testinit: mode=silent")) {
		t.Errorf("init did not run:\n%s", res.Console)
	}
}

func TestQEMUPanic(t *testing.T) {
	kernel := testKernel(t)
	initrd := testInitramfs(t)
	vm, err := Start(context.Background(), WithKernel(kernel), WithInitramfs(initrd), WithAccel(AccelTCG),
		WithAppend("fusevm_test=exit"), WithProbeCache(""), WithTimeouts(tcgTimeouts))
	if err != nil {
		t.Fatal(err)
	}
	res := vm.Wait()
	assertNoProcess(t, vm)
	t.Logf("exit %v (%s), wall %v", res.Exit, res.ShutdownReason, res.Wall)
	if res.Exit != GuestPanicked {
		t.Errorf("exit %v (%v), reason %q; console:\n%s", res.Exit, res.Err, res.ShutdownReason, res.Console)
	}
	reps := splat.Scan(res.Console)
	if len(reps) != 1 || reps[0].Title != "kernel panic: Attempted to kill init!" {
		t.Errorf("splats %+v", reps)
	}
}

// BenchmarkBootToHello boots under the supervisor (QMP, virtio-serial,
// console capture) until the agent's hello, which then powers off.
func BenchmarkBootToHello(b *testing.B) {
	kernel := testKernel(b)
	initrd := testInitramfs(b)
	var hello, wall time.Duration
	for b.Loop() {
		vm, err := Start(context.Background(), WithKernel(kernel), WithInitramfs(initrd), WithAccel(AccelTCG),
			WithAppend("fusevm_test=hello"), WithProbeCache(""), WithTimeouts(tcgTimeouts))
		if err != nil {
			b.Fatal(err)
		}
		for range vm.Events() {
		}
		res := vm.Wait()
		if res.BootToHello == 0 || (res.Exit != GuestShutdown && res.Exit != GuestReset) {
			b.Fatalf("exit %v (%v), no hello", res.Exit, res.Err)
		}
		hello += res.BootToHello
		wall += res.Wall
	}
	b.ReportMetric(float64(hello.Milliseconds())/float64(b.N), "hello-ms/op")
	b.ReportMetric(float64(wall.Milliseconds())/float64(b.N), "wall-ms/op")
}

// BenchmarkRawQEMUBoot boots the same kernel with a plain QEMU command line
// (no QMP, no virtio) into an init that powers off at once: with a plain
// kernel command line, and with the harness's.
func BenchmarkRawQEMUBoot(b *testing.B) {
	kernel := testKernel(b)
	initrd := testInitramfs(b)
	for _, bc := range []struct{ name, cmdline string }{
		// What a user would type: no device, no parameter beyond the console.
		{"plain", "console=ttyS0 panic=-1"},
		// The harness's own kernel parameters, without its devices and agent:
		// the harness's overhead proper.
		{"harness-cmdline", BaseCmdline},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var wall time.Duration
			for b.Loop() {
				start := time.Now()
				cmd := exec.Command("qemu-system-x86_64", "-nodefaults", "-display", "none", "-no-reboot",
					"-machine", Machine, "-accel", "tcg,thread=multi", "-cpu", "max", "-smp", "2", "-m", "512",
					"-kernel", kernel, "-initrd", initrd, "-serial", "stdio",
					"-append", bc.cmdline+" fusevm_test=poweroff")
				var out bytes.Buffer
				cmd.Stdout = &out
				if err := cmd.Run(); err != nil {
					b.Fatalf("qemu: %v\n%s", err, out.Bytes())
				}
				wall += time.Since(start)
			}
			b.ReportMetric(float64(wall.Milliseconds())/float64(b.N), "wall-ms/op")
		})
	}
}

// TestQEMUAutoAccel runs AccelAuto with an empty probe cache: KVM is tried
// with the real kernel and, where it hangs, replaced by TCG within the
// probe window. It costs up to 8 s of a spinning KVM guest, so it only runs
// with FUSEVM_TEST_KVM_PROBE=1.
func TestQEMUAutoAccel(t *testing.T) {
	if os.Getenv("FUSEVM_TEST_KVM_PROBE") != "1" {
		t.Skip("FUSEVM_TEST_KVM_PROBE=1 not set")
	}
	kernel := testKernel(t)
	initrd := testInitramfs(t)
	cache := filepath.Join(t.TempDir(), "kvm-probe.json")
	for run := 0; run < 2; run++ {
		vm, err := Start(context.Background(), WithKernel(kernel), WithInitramfs(initrd),
			WithAppend("fusevm_test=hello"), WithProbeCache(cache), WithTimeouts(tcgTimeouts))
		if err != nil {
			t.Fatal(err)
		}
		for range vm.Events() {
		}
		res := vm.Wait()
		assertNoProcess(t, vm)
		b, _ := os.ReadFile(cache)
		t.Logf("run %d: accel %v (%s), exit %v, boot-to-hello %v, wall %v; cache:\n%s",
			run, res.Accel, res.AccelNote, res.Exit, res.BootToHello, res.Wall, b)
		if res.Exit != GuestShutdown || res.BootToHello == 0 {
			t.Errorf("run %d: exit %v (%v)", run, res.Exit, res.Err)
		}
		if run == 1 && !strings.Contains(res.AccelNote, "probe cache") {
			t.Errorf("second run probed again: %s", res.AccelNote)
		}
	}
}
