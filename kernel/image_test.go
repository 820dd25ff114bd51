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

// fakeModules writes a modules directory: modules.builtin, modules.dep
// and, for each module modules.dep lists, a file.
func fakeModules(t *testing.T, builtin, dep string) string {
	t.Helper()
	mods := filepath.Join(t.TempDir(), "7.3.4-test")
	writeFile(t, filepath.Join(mods, "modules.builtin"), builtin)
	writeFile(t, filepath.Join(mods, "modules.dep"), dep)
	for _, line := range strings.Split(dep, "\n") {
		if path, _, ok := strings.Cut(line, ":"); ok {
			writeFile(t, filepath.Join(mods, path), "module "+path)
		}
	}
	return mods
}

func TestModulesToLoad(t *testing.T) {
	const dep = `kernel/drivers/char/virtio_console.ko.xz: kernel/drivers/virtio/virtio-ring-x.ko
kernel/drivers/virtio/virtio-ring-x.ko:
kernel/drivers/misc/pvpanic/pvpanic-pci.ko.xz: kernel/drivers/misc/pvpanic/pvpanic.ko.xz kernel/drivers/virtio/virtio-ring-x.ko
kernel/drivers/misc/pvpanic/pvpanic.ko.xz:
`
	mods := fakeModules(t, "kernel/fs/fuse/fuse.ko\nkernel/drivers/virtio/virtio_pci.ko\n", dep)
	ctx := context.Background()

	got, err := ModulesToLoad(ctx, mods, GuestNeeds)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range got {
		if !strings.HasPrefix(p, mods+"/kernel/") {
			t.Errorf("%s is not a path in %s", p, mods)
		}
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
	writeFile(t, filepath.Join(mods, "modules.dep"), dep+"kernel/fs/fuse/fuse.ko: kernel/no-such-dep.ko\n")
	if _, err := ModulesToLoad(ctx, mods, GuestNeeds); err == nil || !strings.Contains(err.Error(), "module no_such_dep (needed by fuse) is not in") {
		t.Errorf("missing dependency: %v", err)
	}

	// A module that modules.dep lists but whose file is gone.
	writeFile(t, filepath.Join(mods, "modules.dep"), dep+"kernel/fs/fuse/fuse.ko:\n")
	if _, err := ModulesToLoad(ctx, mods, GuestNeeds); err == nil || !strings.Contains(err.Error(), "module fuse is listed in") {
		t.Errorf("missing module file: %v", err)
	}

	// A malformed modules.dep.
	writeFile(t, filepath.Join(mods, "modules.dep"), dep+"kernel/fs/fuse/fuse.ko\n")
	if _, err := ModulesToLoad(ctx, mods, GuestNeeds); err == nil || !strings.Contains(err.Error(), "modules.dep:5: no colon") {
		t.Errorf("malformed modules.dep: %v", err)
	}

	// No modules.dep: refused, saying how to make one.
	os.Remove(filepath.Join(mods, "modules.dep"))
	if _, err := ModulesToLoad(ctx, mods, GuestNeeds); err == nil || !strings.Contains(err.Error(), "have no modules.dep: run depmod for release 7.3.4-test") {
		t.Errorf("no modules.dep: %v", err)
	}

	// No modules directory: nothing to load, nothing checked.
	if got, err := ModulesToLoad(ctx, "", GuestNeeds); err != nil || got != nil {
		t.Errorf("no modules dir: %v %v", got, err)
	}
}

// TestEnsureModulesDep runs a stand-in depmod that writes what it was
// asked for under the base it was given: that must land in the modules
// directory, which lies under usr/lib/modules as in Debian 13's packages.
func TestEnsureModulesDep(t *testing.T) {
	bin := t.TempDir()
	writeFile(t, filepath.Join(bin, "depmod"), "#!/bin/sh\n[ \"$1\" = -b ] || exit 1\necho \"kernel/fuse.ko: $*\" > \"$2/lib/modules/$3/modules.dep\"\n")
	if err := os.Chmod(filepath.Join(bin, "depmod"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	mods := filepath.Join(t.TempDir(), "usr/lib/modules/7.3.4-test")
	writeFile(t, filepath.Join(mods, "modules.builtin"), "")
	ctx := context.Background()
	if err := ensureModulesDep(ctx, mods); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(mods, "modules.dep"))
	if err != nil || !strings.HasSuffix(strings.TrimSpace(string(data)), " 7.3.4-test") {
		t.Fatalf("modules.dep: %q, %v", data, err)
	}
	// An existing modules.dep is kept.
	writeFile(t, filepath.Join(mods, "modules.dep"), "kept\n")
	if err := ensureModulesDep(ctx, mods); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(filepath.Join(mods, "modules.dep")); string(data) != "kept\n" {
		t.Errorf("modules.dep rewritten: %q", data)
	}
}

func TestReadModule(t *testing.T) {
	dir := t.TempDir()
	ko := writeFile(t, filepath.Join(dir, "m.ko"), "\x7fELF module")
	if data, err := ReadModule(context.Background(), ko); err != nil || string(data) != "\x7fELF module" {
		t.Errorf("plain: %q, %v", data, err)
	}
	if out, err := exec.Command("xz", "-k", ko).CombinedOutput(); err != nil {
		t.Skipf("xz: %v %s", err, out)
	}
	if data, err := ReadModule(context.Background(), ko+".xz"); err != nil || string(data) != "\x7fELF module" {
		t.Errorf("xz: %q, %v", data, err)
	}
	if _, err := ReadModule(context.Background(), filepath.Join(dir, "m.ko.lz4")); err == nil || !strings.Contains(err.Error(), "unknown compression") {
		t.Errorf("lz4: %v", err)
	}
}
