package initramfs

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"

	"fusevm/events"
)

// TestPackIsContentAddressed packs an image, reads it back with u-root's
// reader, and checks that the same content gives the same file.
func TestPackIsContentAddressed(t *testing.T) {
	dir := t.TempDir()
	init := filepath.Join(dir, "init")
	os.WriteFile(init, []byte("#!/bin/true\n"), 0o755)
	cache := t.TempDir()
	p1, err := Pack(cache, map[string]string{"init": init})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := Pack(cache, map[string]string{"init": init})
	if err != nil || p1 != p2 {
		t.Fatalf("same content, different images: %s %s (%v)", p1, p2, err)
	}
	names := map[string]cpio.Record{}
	for _, r := range readImage(t, p1) {
		names[r.Name] = r
	}
	for _, d := range []string{"dev", "proc", "sys", "tmp", "run", "bin"} {
		if _, ok := names[d]; !ok {
			t.Errorf("image lacks /%s", d)
		}
	}
	r, ok := names["init"]
	if !ok || r.Mode&0o111 == 0 {
		t.Fatalf("init missing or not executable: %+v", r.Info)
	}
	os.WriteFile(init, []byte("changed\n"), 0o755)
	p3, err := Pack(cache, map[string]string{"init": init})
	if err != nil || p3 == p1 {
		t.Errorf("changed content, same image %s (%v)", p3, err)
	}
	entries, _ := os.ReadDir(filepath.Join(cache, "initramfs"))
	if len(entries) != 2 {
		t.Errorf("%d cache entries, want 2 (no temporary files left)", len(entries))
	}
}

func TestBuildReportsCompileError(t *testing.T) {
	root, err := ModuleRoot()
	if err != nil {
		t.Skip(err)
	}
	_, err = Build(t.Context(), root, t.TempDir(), []GuestProgram{{Package: "./no/such/package", Path: "init"}}, nil)
	if err == nil || bytes.HasPrefix([]byte(err.Error()), []byte("#")) {
		t.Errorf("got %v", err)
	}
}

// TestModulesAreUncompressedAndListed packs an xz-compressed and a plain
// module: the image holds both uncompressed, listed in load order.
func TestModulesAreUncompressedAndListed(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "virtio_console.ko")
	os.WriteFile(plain, []byte("plain module"), 0o644)
	src := filepath.Join(dir, "pvpanic-pci.ko")
	os.WriteFile(src, []byte("compressed module"), 0o644)
	if out, err := exec.Command("xz", src).CombinedOutput(); err != nil {
		t.Skipf("xz: %v %s", err, out)
	}
	files := map[string]string{}
	if err := addModules(t.Context(), t.TempDir(), []string{plain, src + ".xz"}, files); err != nil {
		t.Fatal(err)
	}
	image, err := Pack(t.TempDir(), files)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range readImage(t, image) {
		data, _ := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
		got[r.Name] = string(data)
	}
	want := map[string]string{
		"lib/modules/00-virtio_console.ko": "plain module",
		"lib/modules/01-pvpanic-pci.ko":    "compressed module",
		events.ModulesFile:                 "/lib/modules/00-virtio_console.ko\n/lib/modules/01-pvpanic-pci.ko\n",
	}
	for name, body := range want {
		if got[name] != body {
			t.Errorf("%s: %q, want %q", name, got[name], body)
		}
	}
	if err := addModules(t.Context(), t.TempDir(), []string{filepath.Join(dir, "x.ko.lz4")}, map[string]string{}); err == nil {
		t.Error("a module of unknown compression was accepted")
	}
}

// readImage reads back every record of an image, contents included, with
// u-root's reader.
func readImage(t *testing.T, path string) []cpio.Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rr, err := cpio.Newc.NewFileReader(f)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := cpio.ReadAllRecords(rr)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs { // keep the contents readable once f is closed
		data, _ := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
		recs[i].ReaderAt = bytes.NewReader(data)
	}
	return recs
}
