// Package initramfs builds the guest image: a newc cpio archive (written
// with u-root's cpio library) holding our static guest agent as /init and
// the guest programs the scenarios run. Images are cached by content, so an
// unchanged agent and daemon reuse the same file.
package initramfs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/u-root/u-root/pkg/cpio"

	"fusevm/events"
	"fusevm/kernel"
)

// GuestProgram is a Go main package of this module built for the guest and
// installed at Path in the image.
type GuestProgram struct {
	Package string // e.g. "./cmd/fusevm-agent"
	Path    string // e.g. "init" or "bin/fusetestd"
}

// DefaultPrograms is what every fusevm guest carries.
var DefaultPrograms = []GuestProgram{
	{Package: "./cmd/fusevm-agent", Path: "init"},
	{Package: "./cmd/fusetestd", Path: "bin/fusetestd"},
}

// dirs exist in every image; the agent mounts filesystems on them.
var dirs = []string{"bin", "dev", "proc", "sys", "tmp", "mnt", "etc", "root", "run"}

// ModuleRoot finds the fusevm source tree (the directory holding its
// go.mod) from $FUSEVM_SRC, the working directory or the executable's
// location, walking up.
func ModuleRoot() (string, error) {
	var starts []string
	if d := os.Getenv("FUSEVM_SRC"); d != "" {
		starts = append(starts, d)
	}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, s := range starts {
		for d := s; ; d = filepath.Dir(d) {
			data, err := os.ReadFile(filepath.Join(d, "go.mod"))
			if err == nil && bytes.HasPrefix(data, []byte("module fusevm\n")) {
				return d, nil
			}
			if d == filepath.Dir(d) {
				break
			}
		}
	}
	return "", fmt.Errorf("fusevm source tree not found (the guest programs are built from it): run from the checkout or set FUSEVM_SRC")
}

// Build compiles progs statically (CGO off) from the module at moduleDir,
// packs them, and the kernel modules kmods (host paths of .ko files, maybe
// compressed, in load order) with their list at events.ModulesFile, into
// an image under cacheDir/initramfs/<sha256>.cpio and returns its path.
// The image is written to a temporary file and renamed, so a failed or
// interrupted build leaves nothing behind.
func Build(ctx context.Context, moduleDir, cacheDir string, progs []GuestProgram, kmods []string) (string, error) {
	binDir, err := os.MkdirTemp("", "fusevm-guest-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(binDir)
	files := map[string]string{}
	if err := addModules(ctx, binDir, kmods, files); err != nil {
		return "", err
	}
	for _, p := range progs {
		out := filepath.Join(binDir, strings.ReplaceAll(p.Path, "/", "_"))
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, p.Package)
		cmd.Dir = moduleDir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
		if msg, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("build guest program %s: %s", p.Package, firstLine(msg))
		}
		files[p.Path] = out
	}
	return Pack(cacheDir, files)
}

// Pack writes an image with the given guest path -> host file mapping (plus
// the standard directories) into cacheDir/initramfs, named by content. A
// cached image that no longer matches its content is written again.
func Pack(cacheDir string, files map[string]string) (string, error) {
	var recs []cpio.Record
	for _, d := range dirs {
		recs = append(recs, cpio.Directory(d, 0o755))
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		data, err := os.ReadFile(files[p])
		if err != nil {
			return "", err
		}
		recs = append(recs, cpio.StaticRecord(data, cpio.Info{Name: p, Mode: 0o100755}))
	}
	var buf bytes.Buffer
	w := cpio.Newc.Writer(&buf)
	if err := cpio.WriteRecordsAndDirs(w, recs); err != nil {
		return "", err
	}
	if err := cpio.WriteTrailer(w); err != nil {
		return "", err
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
	tmp, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write initramfs in %s: %w", dir, err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("write initramfs in %s: %w", dir, err)
	}
	return final, os.Rename(tmp.Name(), final)
}

// addModules writes kmods into dir uncompressed (so that kernels without
// in-kernel module decompression load them too) and maps them, and their
// list, into files.
func addModules(ctx context.Context, dir string, kmods []string, files map[string]string) error {
	if len(kmods) == 0 {
		return nil
	}
	var list strings.Builder
	for i, src := range kmods {
		name := fmt.Sprintf("%02d-%s.ko", i, strings.SplitN(filepath.Base(src), ".ko", 2)[0])
		host := filepath.Join(dir, "mod-"+name)
		data, err := kernel.ReadModule(ctx, src)
		if err != nil {
			return err
		}
		if err := os.WriteFile(host, data, 0o644); err != nil {
			return err
		}
		guest := "lib/modules/" + name
		files[guest] = host
		fmt.Fprintln(&list, "/"+guest)
	}
	listFile := filepath.Join(dir, "modules-list")
	if err := os.WriteFile(listFile, []byte(list.String()), 0o644); err != nil {
		return err
	}
	files[events.ModulesFile] = listFile
	return nil
}

// firstLine returns the first line of go build's output that is not a
// "# package" header: the first error.
func firstLine(b []byte) string {
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if !strings.HasPrefix(l, "#") {
			return strings.TrimSpace(l)
		}
	}
	return strings.TrimSpace(string(b))
}
