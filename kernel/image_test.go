package kernel

import (
	"context"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestKernelDepends(t *testing.T) {
	field := "dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, linux-base-7.3.4+deb13-amd64 (= 7.3.4-1~bpo13+1), linux-binary-7.3.4+deb13-amd64 (= 7.3.4-1~bpo13+1), kmod, linux-modules-amd64"
	want := [][2]string{
		{"linux-base-7.3.4+deb13-amd64", "7.3.4-1~bpo13+1"},
		{"linux-binary-7.3.4+deb13-amd64", "7.3.4-1~bpo13+1"},
		{"linux-modules-amd64", ""},
	}
	if got := kernelDepends(field); !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// fakeBzImage writes a file with an x86 setup header whose kernel_version
// field points at version.
func fakeBzImage(t *testing.T, version string) string {
	t.Helper()
	buf := make([]byte, 0x400)
	copy(buf[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(buf[0x20e:], 0x100) // 0x200 + 0x100
	copy(buf[0x300:], version+"\x00")
	p := filepath.Join(t.TempDir(), "vmlinuz")
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestResolveImagePath(t *testing.T) {
	c := &Cache{Root: t.TempDir()}
	img := fakeBzImage(t, "7.3.4+deb13-amd64 (debian-kernel@lists.debian.org) #1 SMP")
	got, err := ResolveImage(context.Background(), c, img, "", NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Release != "7.3.4+deb13-amd64" || !strings.Contains(got.Identity, "sha256:") || got.ModulesDir != "" {
		t.Errorf("got %+v", got)
	}
	wrongMods := t.TempDir()
	if _, err := ResolveImage(context.Background(), c, img, wrongMods, NopLogger{}); err == nil || !strings.Contains(err.Error(), "not for release 7.3.4+deb13-amd64") {
		t.Errorf("modules of another release: %v", err)
	}
	junk := writeFile(t, filepath.Join(t.TempDir(), "junk"), "not a kernel")
	for spec, want := range map[string]string{
		junk:                         "not an x86 bzImage",
		"/nonexistent/vmlinuz":       "no such file",
		"debian:linux-headers-amd64": "want a linux-image-*",
	} {
		if _, err := ResolveImage(context.Background(), c, spec, "", NopLogger{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", spec, err, want)
		}
	}
}

// fakeModule writes a relocatable ELF object with a .modinfo section
// holding depends=deps (compiled with the host's gcc and objcopy, as a
// kernel build would), compressed with xz when the name ends in .xz.
func fakeModule(t *testing.T, path, deps string) {
	t.Helper()
	dir := t.TempDir()
	src := writeFile(t, filepath.Join(dir, "m.c"), "int fake_module;\n")
	info := writeFile(t, filepath.Join(dir, "info"), "license=GPL\x00depends="+deps+"\x00name=x\x00")
	obj := filepath.Join(dir, "m.o")
	os.MkdirAll(filepath.Dir(path), 0o755)
	ko := strings.TrimSuffix(path, ".xz")
	for _, cmd := range [][]string{
		{"gcc", "-c", "-o", obj, src},
		{"objcopy", "--add-section", ".modinfo=" + info, obj, ko},
	} {
		if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
			t.Skipf("%s: %v %s", cmd[0], err, out)
		}
	}
	if strings.HasSuffix(path, ".xz") {
		if out, err := exec.Command("xz", ko).CombinedOutput(); err != nil {
			t.Fatalf("xz: %v %s", err, out)
		}
	}
}

func TestModulesToLoad(t *testing.T) {
	mods := filepath.Join(t.TempDir(), "7.3.4-test")
	writeFile(t, filepath.Join(mods, "modules.builtin"), "kernel/fs/fuse/fuse.ko\nkernel/drivers/virtio/virtio_pci.ko\n")
	fakeModule(t, filepath.Join(mods, "kernel/drivers/char/virtio_console.ko.xz"), "virtio-ring-x")
	fakeModule(t, filepath.Join(mods, "kernel/drivers/virtio/virtio-ring-x.ko"), "")
	fakeModule(t, filepath.Join(mods, "kernel/drivers/misc/pvpanic/pvpanic-pci.ko.xz"), "pvpanic,virtio-ring-x")
	fakeModule(t, filepath.Join(mods, "kernel/drivers/misc/pvpanic/pvpanic.ko.xz"), "")
	ctx := context.Background()

	got, err := ModulesToLoad(ctx, mods, GuestNeeds)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range got {
		names = append(names, filepath.Base(p))
	}
	want := []string{"virtio-ring-x.ko", "virtio_console.ko.xz", "pvpanic.ko.xz", "pvpanic-pci.ko.xz"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("load order %v, want %v (dependencies first, built-ins skipped)", names, want)
	}

	// FUSE neither built in nor a module: a clear error naming it.
	writeFile(t, filepath.Join(mods, "modules.builtin"), "kernel/drivers/virtio/virtio_pci.ko\n")
	if _, err := ModulesToLoad(ctx, mods, GuestNeeds); err == nil || !strings.Contains(err.Error(), "lacks FUSE") {
		t.Errorf("no FUSE: %v", err)
	}

	// A dependency that is not there.
	fakeModule(t, filepath.Join(mods, "kernel/fs/fuse/fuse.ko"), "no-such-dep")
	if _, err := ModulesToLoad(ctx, mods, GuestNeeds); err == nil || !strings.Contains(err.Error(), "module no_such_dep (needed by fuse) is not in") {
		t.Errorf("missing dependency: %v", err)
	}

	// No modules directory: nothing to load, nothing checked.
	if got, err := ModulesToLoad(ctx, "", GuestNeeds); err != nil || got != nil {
		t.Errorf("no modules dir: %v %v", got, err)
	}
}
