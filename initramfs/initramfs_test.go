package initramfs

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// TestBuildPacksTheExecutable builds images from a static executable: /init
// holds its bytes, /bin/fusetestd points at /init, and another executable
// gives another image.
func TestBuildPacksTheExecutable(t *testing.T) {
	exe := staticBinary(t)
	cache := t.TempDir()
	img, err := build(t.Context(), exe, cache, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(exe)
	recs := map[string]cpio.Record{}
	for _, r := range readImage(t, img) {
		recs[r.Name] = r
	}
	init, ok := recs["init"]
	if !ok || init.Mode != cpio.S_IFREG|0o755 || !bytes.Equal(contents(t, init), want) {
		t.Errorf("/init: %+v, want the executable's %d bytes, mode 0755", init.Info, len(want))
	}
	daemon, ok := recs["bin/fusetestd"]
	if !ok || daemon.Mode&cpio.S_IFMT != cpio.S_IFLNK || string(contents(t, daemon)) != "/init" {
		t.Errorf("/bin/fusetestd: %+v, want a symlink to /init", daemon.Info)
	}
	if again, err := build(t.Context(), exe, cache, nil); err != nil || again != img {
		t.Errorf("same executable, image %s (%v), want %s", again, err, img)
	}
	// Appended bytes leave a valid ELF file: a changed executable.
	f, _ := os.OpenFile(exe, os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte("changed"))
	f.Close()
	changed, err := build(t.Context(), exe, cache, nil)
	if err != nil || changed == img {
		t.Errorf("changed executable, image %s (%v), want one other than %s", changed, err, img)
	}
}

// TestCheckStatic accepts a static x86-64 executable and refuses, with one
// line saying why, a dynamically linked one, one for another machine and a
// file that is no ELF executable.
func TestCheckStatic(t *testing.T) {
	static := staticBinary(t)
	if err := checkStatic(static); err != nil {
		t.Errorf("static binary refused: %v", err)
	}
	data, _ := os.ReadFile(static)
	binary.LittleEndian.PutUint16(data[18:], uint16(elf.EM_AARCH64)) // e_machine
	arm := filepath.Join(t.TempDir(), "arm")
	os.WriteFile(arm, data, 0o755)
	script := filepath.Join(t.TempDir(), "script")
	os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755)
	cases := map[string]string{
		arm:    "fusevm is built for EM_AARCH64 but the guest is x86-64",
		script: "the fusevm executable as the guest's /init: ",
	}
	if dynamic("/bin/true") {
		cases["/bin/true"] = "fusevm is dynamically linked; build it with CGO_ENABLED=0"
	} else {
		t.Log("/bin/true is no dynamically linked executable here: dynamic case skipped")
	}
	for path, want := range cases {
		err := checkStatic(path)
		if err == nil || !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want one line starting %q", path, err, want)
		}
		if _, err := build(t.Context(), path, t.TempDir(), nil); err == nil {
			t.Errorf("%s: packed", path)
		}
	}
}

// TestCheckExecutable checks the running test binary: refused exactly when
// it names a program interpreter (go test builds with cgo when it can).
func TestCheckExecutable(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckExecutable(); (err != nil) != dynamic(exe) {
		t.Errorf("%s: %v, dynamically linked: %v", exe, err, dynamic(exe))
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
	recs, err := modules(t.Context(), []string{plain, src + ".xz"})
	if err != nil {
		t.Fatal(err)
	}
	image, err := write(t.TempDir(), recs)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range readImage(t, image) {
		got[r.Name] = string(contents(t, r))
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
	if _, err := modules(t.Context(), []string{filepath.Join(dir, "x.ko.lz4")}); err == nil {
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

// contents reads a record's data.
func contents(t *testing.T, r cpio.Record) []byte {
	t.Helper()
	data, err := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// staticBinary builds a small Go program without cgo, as fusevm must be
// built, and returns its path.
func staticBinary(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	os.WriteFile(src, []byte("package main\n\nfunc main() {}\n"), 0o644)
	bin := filepath.Join(dir, "fusevm")
	cmd := exec.Command("go", "build", "-o", bin, src)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// dynamic reports whether the ELF file at path names a program interpreter.
func dynamic(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return true
		}
	}
	return false
}
