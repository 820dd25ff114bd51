package harness

import (
	"strings"
	"testing"

	"fusevm/vmtest"
)

// TestShellBanner: the banner names the variant and how to leave, and
// with the gdb stub how to attach (and that a prebuilt kernel has no
// symbols).
func TestShellBanner(t *testing.T) {
	p := testPlan(t, []string{"smoke-passthrough"}, "v2")
	sh := Shell{Variant: p.Variants[0], Scenarios: p.Scenarios}
	si := ShellInfo{Kernel: "/cache/kernels/k1/bzImage", Cmdline: "console=ttyS0 fusevm.shell", Accel: vmtest.AccelTCG, AccelNote: "KVM unavailable"}
	var b strings.Builder
	sh.WriteBanner(&b, si)
	want := `==> shell: k v2 under tcg (KVM unavailable)
    kernel /cache/kernels/k1/bzImage
    kernel command line: console=ttyS0 fusevm.shell
    in the guest: help lists the commands, exit powers off; Ctrl-A x quits QEMU
`
	if b.String() != want {
		t.Errorf("without gdb:\n%s\nwant\n%s", b.String(), want)
	}
	sh.GDBPort, si.GDB = 1234, GDBCommand("", 1234)
	b.Reset()
	sh.WriteBanner(&b, si)
	gdb := `==> gdb: QEMU waits for gdb on port 1234; in another terminal:
    gdb -ex 'target remote :1234'
    then "continue" (use hbreak for breakpoints before the kernel is up)
    (a prebuilt kernel has no vmlinux here: gdb gets no symbols)
`
	if b.String() != want+gdb {
		t.Errorf("with gdb:\n%s\nwant\n%s", b.String(), want+gdb)
	}
	si.Vmlinux = "/cache/kernels/k1/vmlinux"
	b.Reset()
	sh.WriteBanner(&b, si)
	if strings.Contains(b.String(), "no symbols") {
		t.Errorf("with a vmlinux:\n%s", b.String())
	}
}
