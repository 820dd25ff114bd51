package harness

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"fusevm/events"
	"fusevm/execute"
	"fusevm/guestshell"
	"fusevm/kernel"
	"fusevm/plan"
	"fusevm/report"
	"fusevm/scenarios"
	"fusevm/verdict"
	"fusevm/vmtest"
)

// realistic is the fake with what real VMs give: a console per VM, and
// scenarios that take time.
type realistic struct{ *fake }

func (w realistic) Execute(ctx context.Context, job execute.Job) (*execute.Outcome, error) {
	o, err := w.fake.Execute(ctx, job)
	if o != nil {
		o.VMs[0].ConsoleLog = filepath.Join(job.OutDir, "console.log")
		o.VMs[0].Argv = []string{"qemu-system-x86_64", "-kernel", job.Kernel}
		for i := range o.Results {
			o.Results[i].Duration = 10 * time.Millisecond
		}
	}
	return o, err
}

// TestRunRecords: a results directory records how each variant booted
// (images, kernel command line, parameters), each VM's QEMU command line
// and scenarios (vms.json), the scripts run, and how to rebuild each
// variant; a failed build's log is copied in, since the next build of
// that source overwrites the workspace's.
func TestRunRecords(t *testing.T) {
	wsLog := filepath.Join(t.TempDir(), "build.log")
	os.WriteFile(wsLog, []byte("make -C ...\n  CC fs/fuse/backing.o\nfs/fuse/backing.c:9: error: x undeclared\n"), 0o644)
	build := &kernel.BuildError{Stage: "build", File: "fs/fuse/backing.c:9", Msg: "error: x undeclared", Log: wsLog, Tail: "  CC fs/fuse/backing.o\nfs/fuse/backing.c:9: error: x undeclared\n"}
	f := &fake{prepareErr: map[string]error{"nobuild": build}}
	h, _ := newHarness(f, Options{VMs: 1, Count: 1, Subdirs: true})
	h.Stages = realistic{f}
	p := testPlan(t, []string{"smoke-passthrough", "stale-id"}, "baseline", "v2", "nobuild")
	dir := t.TempDir()
	out := h.Run(context.Background(), p, dir)

	ks := map[string]report.Kernel{}
	for _, k := range out.Run.Kernels {
		ks[k.Variant] = k
	}
	v2 := ks["v2"]
	if v2.Boot == nil || v2.Boot.Kernel != "bzImage-v2" || v2.Boot.Initramfs != "initramfs.cpio" || v2.Boot.Cmdline != vmtest.BaseCmdline {
		t.Errorf("v2 boot record: %+v", v2.Boot)
	}
	if v2.Series != "patches/fuse-passthrough-recovery/7.3/v2" || !slices.Contains(v2.RunArgs, "--series") {
		t.Errorf("v2 series %q, run args %q", v2.Series, v2.RunArgs)
	}
	// The failed build: its log is in the results, and the reason names
	// the copy, not the workspace.
	nb := ks["nobuild"]
	copied := filepath.Join(dir, p.Variants[2].Dir(), BuildLogFile)
	if abs, _ := filepath.Abs(copied); nb.BuildLog != abs || nb.Boot != nil || !strings.Contains(nb.BuildLogTail, "x undeclared") {
		t.Errorf("nobuild: log %q tail %q boot %v, want the log at %s", nb.BuildLog, nb.BuildLogTail, nb.Boot, copied)
	}
	if data, err := os.ReadFile(copied); err != nil || !strings.Contains(string(data), "make -C") {
		t.Errorf("copied build log: %q, %v", data, err)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, p.Variants[2].Dir(), BuildTailFile)); !strings.Contains(string(data), "x undeclared") {
		t.Errorf("build tail: %q", data)
	}
	if r := cellsOf(out.Run)["nobuild/stale-id"]; !strings.Contains(r.Reason, "(log: "+nb.BuildLog+")") {
		t.Errorf("the SKIP reason names %q, want the copy", r.Reason)
	}
	// One vms.json per VM directory, naming the scenarios each VM settled.
	var vms []report.VM
	data, err := os.ReadFile(filepath.Join(dir, p.Variants[1].Dir(), VMsFile))
	if err != nil || json.Unmarshal(data, &vms) != nil || len(vms) != 1 {
		t.Fatalf("vms.json: %s (%v)", data, err)
	}
	if vms[0].Kernel != "bzImage-v2" || !reflect.DeepEqual(vms[0].Scenarios, []string{"smoke-passthrough", "stale-id"}) || vms[0].Accel != "tcg" || !reflect.DeepEqual(vms[0].Argv, []string{"qemu-system-x86_64", "-kernel", "bzImage-v2"}) {
		t.Errorf("vms.json: %+v", vms[0])
	}
	// The scripts as they ran.
	if data, err := os.ReadFile(filepath.Join(dir, ScenariosDir, "stale-id.fvm")); err != nil || !strings.Contains(string(data), "needs: close_all_ioctl") {
		t.Errorf("scenario copy: %q, %v", data, err)
	}
}

// bootFiles makes a kernel cache entry and a guest image as the cache
// holds them: SHA256SUMS beside the kernel, the image named by its digest.
func bootFiles(t *testing.T) *report.Boot {
	t.Helper()
	dir := t.TempDir()
	kdir := filepath.Join(dir, "kernels", "k1")
	os.MkdirAll(kdir, 0o755)
	var sums strings.Builder
	for _, n := range []string{"bzImage", "vmlinux"} {
		data := []byte("the " + n)
		os.WriteFile(filepath.Join(kdir, n), data, 0o644)
		sum := sha256.Sum256(data)
		sums.WriteString(hex.EncodeToString(sum[:]) + "  " + n + "\n")
	}
	os.WriteFile(filepath.Join(kdir, "SHA256SUMS"), []byte(sums.String()), 0o644)
	img := []byte("cpio")
	sum := sha256.Sum256(img)
	initrd := filepath.Join(dir, hex.EncodeToString(sum[:12])+".cpio")
	os.WriteFile(initrd, img, 0o644)
	return &report.Boot{Kernel: filepath.Join(kdir, "bzImage"), Vmlinux: filepath.Join(kdir, "vmlinux"), Initramfs: initrd,
		Cmdline: vmtest.BaseCmdline + " slub_debug=FZPU", Append: []string{"slub_debug=FZPU"}, CPUs: 1, Params: map[string]string{"inode_cache_bit": "9"}}
}

// TestRepro runs a recorded cell again on its recorded images, command
// line, vCPUs, claims and parameters, --count times in fresh VMs, and
// judges the merged verdict against the recorded expectation.
func TestRepro(t *testing.T) {
	b := bootFiles(t)
	from := &report.Run{
		Kernels: []report.Kernel{{Name: "debian-7.3", Variant: "v2", Config: "base+debug", Claims: []string{"close_all_ioctl", "same_inode_reuse"}, Boot: b}},
		Results: []report.Result{{Kernel: "debian-7.3", Variant: "v2", Config: "base+debug", Scenario: "close-all-race", Verdict: verdict.Crash, Expected: verdict.Pass}},
	}
	ss, _ := scenarios.Load([]string{"close-all-race"})
	var mu sync.Mutex
	var argvs [][]string
	var jobs []execute.Job
	f := &fake{
		verdict: func(_, _ string, n int) verdict.Verdict {
			if n == 2 {
				return verdict.Crash
			}
			return ""
		},
		during: func(_ context.Context, job execute.Job) {
			a, err := vmtest.Argv(append(slices.Clone(job.VMOptions), vmtest.WithKernel(job.Kernel), vmtest.WithInitramfs(job.Initramfs), vmtest.WithAccel(vmtest.AccelTCG), vmtest.WithWorkDir("/w"))...)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			argvs, jobs = append(argvs, a), append(jobs, job)
			mu.Unlock()
		},
	}
	h, _ := newHarness(f, Options{Cache: t.TempDir(), VMs: 1, Count: 1})
	out := t.TempDir()
	run, err := h.Repro(context.Background(), Repro{From: from, Cell: &from.Results[0], Scenario: ss[0], Count: 3}, out)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 3 {
		t.Fatalf("%d VMs, want 3", len(jobs))
	}
	for i, j := range jobs {
		if j.Kernel != b.Kernel || j.Initramfs != b.Initramfs || j.Vmlinux != b.Vmlinux || !reflect.DeepEqual(j.Claims, from.Kernels[0].Claims) || j.Params["inode_cache_bit"] != "9" || j.OutDir != filepath.Join(out, "run"+string(rune('1'+i))) {
			t.Errorf("VM %d: %+v", i+1, j)
		}
		if a := strings.Join(argvs[i], " "); !strings.Contains(a, "-append "+b.Cmdline+" ") || !strings.Contains(a, "-smp 1 ") {
			t.Errorf("VM %d argv: %s", i+1, a)
		}
	}
	r := run.Results[0]
	if len(run.Results) != 1 || r.Verdict != verdict.Flaky || r.AsExpected || r.Expected != verdict.Pass || !reflect.DeepEqual(r.Runs, []verdict.Verdict{verdict.Pass, verdict.Crash, verdict.Pass}) || r.CellID() != "debian-7.3/v2@base+debug/close-all-race" {
		t.Errorf("merged: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(out, "run2", VMsFile)); err != nil {
		t.Error(err)
	}

	// An image changed since the run is refused.
	os.WriteFile(b.Kernel, []byte("rebuilt"), 0o644)
	if _, err := h.Repro(context.Background(), Repro{From: from, Cell: &from.Results[0], Scenario: ss[0], Count: 1}, t.TempDir()); err == nil || !strings.Contains(err.Error(), "changed since the run") {
		t.Errorf("a changed kernel: %v", err)
	}
	// A variant that did not build cannot be booted again.
	from.Kernels[0].Boot, from.Kernels[0].BuildError, from.Kernels[0].RunArgs = nil, "kernel build failed", []string{"--kernel", "debian:7.3"}
	if _, err := h.Repro(context.Background(), Repro{From: from, Cell: &from.Results[0], Scenario: ss[0]}, t.TempDir()); err == nil || !strings.Contains(err.Error(), "did not build") || !strings.Contains(err.Error(), "fusevm run --kernel debian:7.3") {
		t.Errorf("no boot record: %v", err)
	}
}

// withVmlinux is the fake with a kept vmlinux.
type withVmlinux struct{ *fake }

func (w withVmlinux) Prepare(ctx context.Context, v *plan.Variant, info *report.Kernel) (*Bootable, error) {
	b, err := w.fake.Prepare(ctx, v, info)
	if b != nil {
		b.Vmlinux = "/cache/kernels/k1/vmlinux"
	}
	return b, err
}

// TestShell boots the variant with the shell's kernel argument, sends
// the plan, and with --gdb adds the stub, nokaslr and the gdb command.
func TestShell(t *testing.T) {
	p := testPlan(t, []string{"smoke-passthrough", "stale-id"}, "v2")
	f := &fake{}
	h, _ := newHarness(f, Options{Cache: t.TempDir(), Accel: vmtest.AccelTCG})
	h.Stages = withVmlinux{f}
	var gotPlan any
	var argv []string
	h.interactive = func(_ context.Context, _ vmtest.Terminal, plan any, _ func(events.Event), opts ...vmtest.Option) error {
		gotPlan = plan
		var err error
		argv, err = vmtest.Argv(append(opts, vmtest.WithWorkDir("/w"), vmtest.WithInteractive())...)
		return err
	}
	var info ShellInfo
	err := h.Shell(context.Background(), Shell{Variant: p.Variants[0], Scenarios: p.Scenarios, GDBPort: 1234, Ready: func(si ShellInfo) { info = si }})
	if err != nil {
		t.Fatal(err)
	}
	a := strings.Join(argv, " ")
	for _, want := range []string{"-kernel bzImage-v2 ", "nokaslr " + guestshell.Arg, "-gdb tcp::1234 -S", "-accel tcg", "stdio,id=con,mux=on"} {
		if !strings.Contains(a, want) {
			t.Errorf("argv lacks %q: %s", want, a)
		}
	}
	if info.GDB != "gdb /cache/kernels/k1/vmlinux -ex 'target remote :1234'" || info.Accel != vmtest.AccelTCG || !strings.Contains(info.Cmdline, "nokaslr") {
		t.Errorf("shell info: %+v", info)
	}
	ep, ok := gotPlan.(events.Plan)
	if !ok || len(ep.Scenarios) != 2 || !reflect.DeepEqual(ep.Claims, []string{"close_all_ioctl", "same_inode_reuse"}) {
		t.Errorf("plan: %+v", gotPlan)
	}
	// Without --gdb: no stub, no nokaslr.
	h.Shell(context.Background(), Shell{Variant: p.Variants[0], Scenarios: p.Scenarios})
	if a := strings.Join(argv, " "); strings.Contains(a, "-gdb") || strings.Contains(a, "nokaslr") || !strings.Contains(a, guestshell.Arg) {
		t.Errorf("argv without gdb: %s", a)
	}
}

// statusLog records statuses.
type statusLog struct {
	logger
	mu sync.Mutex
	st []Status
}

func (s *statusLog) Status(st Status) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st = append(s.st, st)
}

// TestETA: the first run has no timings, so no estimate until its first
// VM is done; it records them in the cache, and the next run's statuses
// carry an end time from the start.
func TestETA(t *testing.T) {
	cache := t.TempDir()
	f := &fake{during: func(context.Context, execute.Job) { time.Sleep(30 * time.Millisecond) }}
	p := testPlan(t, []string{"smoke-passthrough", "stale-id"}, "baseline", "v2")
	var runs [][]Status
	for range 2 {
		l := &statusLog{}
		h := &Harness{Options: Options{Cache: cache, VMs: 1, Count: 1, Log: l}, Stages: realistic{f}}
		h.Run(context.Background(), p, t.TempDir())
		runs = append(runs, l.st)
	}
	if len(runs[0]) == 0 || len(runs[1]) == 0 {
		t.Fatalf("statuses: %v", runs)
	}
	// The first run learns as it goes: nothing is known before its
	// first VM has run.
	if st := runs[0][0]; !st.Finish.IsZero() {
		t.Errorf("first run: an estimate without timings: %+v", st)
	}
	first := runs[1][0]
	if first.Stage != "prepare" || first.Variant != "k baseline" || first.Finish.IsZero() || first.Total != 2 || first.Finish.Before(first.Started) {
		t.Errorf("second run's first status: %+v", first)
	}
	if last := runs[1][len(runs[1])-1]; last.Stage != "boot" || last.Done > last.Total {
		t.Errorf("second run's last status: %+v", last)
	}
	var tm timings
	data, _ := os.ReadFile(filepath.Join(cache, TimingsFile))
	if json.Unmarshal(data, &tm) != nil || tm.VM <= 0 || len(tm.Prepare) != 2 {
		t.Errorf("timings: %s", data)
	}
}
