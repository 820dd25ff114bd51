package splat

import (
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildFakeVmlinux compiles a small program with line tables, standing in
// for a kernel's vmlinux: decoding needs only its symbols and DWARF.
func buildFakeVmlinux(t *testing.T) (string, map[string]elf.Symbol) {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("gcc not installed")
	}
	if _, err := exec.LookPath("addr2line"); err != nil {
		t.Skip("addr2line not installed")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "fs", "fuse", "backing.c")
	os.MkdirAll(filepath.Dir(src), 0o755)
	os.WriteFile(src, []byte(`volatile int sink;
static inline __attribute__((always_inline)) void inner(int x)
{
	sink = x;
}
__attribute__((noinline)) int fuse_backing_close(int id)
{
	inner(id);
	return sink + 1;
}
__attribute__((noinline)) int fuse_dev_ioctl(int id)
{
	return fuse_backing_close(id) + 2;
}
void _start(void)
{
	fuse_dev_ioctl(3);
	for (;;)
		;
}
`), 0o644)
	out := filepath.Join(dir, "vmlinux")
	// Linked where x86-64 kernels live, so raw kernel addresses apply too.
	cmd := exec.Command("gcc", "-g", "-O2", "-nostdlib", "-static", "-fno-pie", "-no-pie", "-mcmodel=kernel",
		"-Wl,-Ttext-segment=0xffffffff81000000", "-o", out, src)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, _ := f.Symbols()
	m := map[string]elf.Symbol{}
	for _, s := range syms {
		m[s.Name] = s
	}
	return out, m
}

func TestDecode(t *testing.T) {
	vmlinux, syms := buildFakeVmlinux(t)
	closeSym, ioctlSym := syms["fuse_backing_close"], syms["fuse_dev_ioctl"]
	// The RIP inside fuse_backing_close; the caller's frame is a return
	// address just past its call.
	text := fmt.Sprintf(`[    7.586132] WARNING: fs/fuse/backing.c:4 at fuse_backing_close+0x0/0x%x, CPU#0: init/1
[    7.588809] RIP: 0010:fuse_backing_close+0x0/0x%x
[    7.594264] Call Trace:
[    7.594991]  <TASK>
[    7.595206]  fuse_dev_ioctl+0x%x/0x%x
[    7.595213]  ? unrelated_guess+0x10/0x20
[    7.596704]  </TASK>
`, closeSym.Size, closeSym.Size, ioctlSym.Size-1, ioctlSym.Size)
	got, err := Decode(vmlinux, text)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("decoded:\n%s", got)
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if len(lines) < 2 {
		t.Fatalf("decoded:\n%s", got)
	}
	if !strings.HasPrefix(lines[0], fmt.Sprintf("fuse_backing_close+0x0/0x%x fs/fuse/backing.c:", closeSym.Size)) {
		t.Errorf("RIP frame decoded as %q, want fuse_backing_close at fs/fuse/backing.c", lines[0])
	}
	if !strings.Contains(got, "    inlined inner fs/fuse/backing.c:4\n") {
		t.Errorf("the function inlined into the RIP frame is missing:\n%s", got)
	}
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "fuse_dev_ioctl+") || !strings.Contains(last, " fs/fuse/backing.c:") {
		t.Errorf("caller frame decoded as %q", last)
	}
	if strings.Contains(got, "unrelated_guess") {
		t.Errorf("an unreliable ('?') frame was decoded:\n%s", got)
	}
	if strings.Contains(got, "/tmp") || strings.Contains(got, filepath.Dir(vmlinux)) {
		t.Errorf("paths are not relative to the tree:\n%s", got)
	}
}

// TestDecodeRawAddresses: a kernel without KALLSYMS prints bare addresses;
// decoding names their functions.
func TestDecodeRawAddresses(t *testing.T) {
	vmlinux, syms := buildFakeVmlinux(t)
	closeSym := syms["fuse_backing_close"]
	text := fmt.Sprintf("[    3.953802] RIP: 0010:%#x\n[    3.967928]  <TASK>\n[    3.968328]  ? %#x\n", closeSym.Value, syms["fuse_dev_ioctl"].Value+4)
	got, err := Decode(vmlinux, text)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got, fmt.Sprintf("fuse_backing_close %#x fs/fuse/backing.c:", closeSym.Value)) ||
		!strings.Contains(got, "\nfuse_dev_ioctl 0x") {
		t.Errorf("decoded:\n%s", got)
	}
}

func TestDecodeErrors(t *testing.T) {
	vmlinux, _ := buildFakeVmlinux(t)
	if _, err := Decode(vmlinux, "[    1.000000] nothing here\n"); err == nil {
		t.Error("a report without frames decoded")
	}
	if _, err := Decode(vmlinux, "RIP: 0010:no_such_function+0x1/0x2\n"); err == nil {
		t.Error("a frame naming no symbol of vmlinux decoded")
	}
	if _, err := Decode(filepath.Join(t.TempDir(), "missing"), "RIP: 0010:f+0x1/0x2\n"); err == nil {
		t.Error("a missing vmlinux decoded")
	}
}
