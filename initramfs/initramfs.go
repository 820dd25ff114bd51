// Package initramfs builds the guest image: a newc cpio archive (written
// with u-root's cpio library) holding the running fusevm executable as
// /init, /bin/fusetestd as a symlink to it, and the kernel modules a
// prebuilt kernel needs. The fusevm binary is multi-call (see cmd/fusevm):
// started as init it is the guest agent, started as fusetestd the test
// daemon, so the image needs no other program and fusevm needs no Go
// toolchain or source tree to make it. Images are cached by content, so an
// unchanged executable and module set reuse the same file.
package initramfs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/u-root/u-root/pkg/cpio"

	"fusevm/events"
	"fusevm/internal/atomicfile"
	"fusevm/kernel"
)

// Guest paths of the programs: the kernel runs /init, and the agent starts
// the daemon as /bin/fusetestd (see package agent).
const (
	initPath   = "init"
	daemonPath = "bin/fusetestd"
)

// selfExe is the running executable. Reading it, rather than the file at
// the path os.Executable returns, packs the very program that runs, even
// when its file has been replaced (say by go install) since it started.
const selfExe = "/proc/self/exe"

// dirs exist in every image; the agent mounts filesystems on them.
var dirs = []string{"bin", "dev", "proc", "sys", "tmp", "mnt", "etc", "root", "run"}

// Build packs the running fusevm executable as the guest's /init, with
// /bin/fusetestd a symlink to it, and the kernel modules kmods (host paths
// of .ko files, maybe compressed, in load order) with their list at
// events.ModulesFile, into an image under cacheDir/initramfs/<sha256>.cpio
// and returns its path. The executable must be statically linked (built
// with CGO_ENABLED=0): the image carries no dynamic loader or C library.
// The image is written to a temporary file and renamed, so a failed or
// interrupted build leaves nothing behind.
func Build(ctx context.Context, cacheDir string, kmods []string) (string, error) {
	return build(ctx, selfExe, cacheDir, kmods)
}

// CheckExecutable returns why the running executable cannot be the guest's
// /init, or nil. Build checks it too; a command calls it first to fail
// before a kernel build, not after.
func CheckExecutable() error {
	return checkStatic(selfExe)
}

// build is Build with the executable at exe.
func build(ctx context.Context, exe, cacheDir string, kmods []string) (string, error) {
	if err := checkStatic(exe); err != nil {
		return "", err
	}
	data, err := os.ReadFile(exe)
	if err != nil {
		return "", fmt.Errorf("read the fusevm executable for the guest: %w", err)
	}
	recs := []cpio.Record{
		cpio.StaticRecord(data, cpio.Info{Name: initPath, Mode: cpio.S_IFREG | 0o755}),
		cpio.Symlink(daemonPath, "/"+initPath),
	}
	mods, err := modules(ctx, kmods)
	if err != nil {
		return "", err
	}
	return write(cacheDir, append(recs, mods...))
}

// checkStatic makes sure that the executable at exe can run as the guest's
// /init: an x86-64 ELF file (the guest is qemu-system-x86_64) without a
// program interpreter.
func checkStatic(exe string) error {
	f, err := elf.Open(exe)
	if err != nil {
		return fmt.Errorf("the fusevm executable as the guest's /init: %w", err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		return fmt.Errorf("fusevm is built for %s but the guest is x86-64: fusevm runs on x86-64 hosts only", f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("fusevm is dynamically linked; build it with CGO_ENABLED=0")
		}
	}
	return nil
}

// Pack writes an image with the given guest path -> host file mapping,
// every file executable, into cacheDir/initramfs, named by content, like
// Build.
func Pack(cacheDir string, files map[string]string) (string, error) {
	var recs []cpio.Record
	for p, host := range files {
		data, err := os.ReadFile(host)
		if err != nil {
			return "", err
		}
		recs = append(recs, cpio.StaticRecord(data, cpio.Info{Name: p, Mode: cpio.S_IFREG | 0o755}))
	}
	return write(cacheDir, recs)
}

// write writes an image of recs (plus the standard directories) into
// cacheDir/initramfs, named by content. A cached image that no longer
// matches its content is written again.
func write(cacheDir string, recs []cpio.Record) (string, error) {
	sort.Slice(recs, func(i, j int) bool { return recs[i].Name < recs[j].Name })
	all := make([]cpio.Record, 0, len(dirs)+len(recs))
	for _, d := range dirs {
		all = append(all, cpio.Directory(d, 0o755))
	}
	all = append(all, recs...)
	var buf bytes.Buffer
	w := cpio.Newc.Writer(&buf)
	if err := cpio.WriteRecordsAndDirs(w, all); err != nil {
		return "", fmt.Errorf("pack initramfs: %w", err)
	}
	if err := cpio.WriteTrailer(w); err != nil {
		return "", fmt.Errorf("pack initramfs: %w", err)
	}
	sum := sha256.Sum256(buf.Bytes())
	dir := filepath.Join(cacheDir, "initramfs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	final := filepath.Join(dir, hex.EncodeToString(sum[:12])+".cpio")
	// A cached image is used only if it still holds these bytes; a
	// damaged one is replaced whole by the rename below.
	if old, err := os.ReadFile(final); err == nil && bytes.Equal(old, buf.Bytes()) {
		now := time.Now()
		os.Chtimes(final, now, now) // its last use, for fusevm cache prune
		return final, nil
	}
	if err := atomicfile.Write(final, buf.Bytes(), 0o600); err != nil {
		return "", fmt.Errorf("write initramfs in %s: %w", dir, err)
	}
	return final, nil
}

// modules reads kmods uncompressed (so that kernels without in-kernel
// module decompression load them too) into records under lib/modules/,
// numbered in load order, plus their list at events.ModulesFile.
func modules(ctx context.Context, kmods []string) ([]cpio.Record, error) {
	if len(kmods) == 0 {
		return nil, nil
	}
	var recs []cpio.Record
	var list strings.Builder
	for i, src := range kmods {
		name := fmt.Sprintf("lib/modules/%02d-%s.ko", i, strings.SplitN(filepath.Base(src), ".ko", 2)[0])
		data, err := kernel.ReadModule(ctx, src)
		if err != nil {
			return nil, err
		}
		recs = append(recs, cpio.StaticRecord(data, cpio.Info{Name: name, Mode: cpio.S_IFREG | 0o644}))
		fmt.Fprintln(&list, "/"+name)
	}
	recs = append(recs, cpio.StaticRecord([]byte(list.String()), cpio.Info{Name: events.ModulesFile, Mode: cpio.S_IFREG | 0o644}))
	return recs, nil
}
