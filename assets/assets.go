// Package assets puts the configuration fusevm was built with on disk:
// configs/ and patches/ of its source tree, embedded in the binary (see
// package fusevm). So a fusevm binary installed anywhere, with no source
// tree, still has its default matrix, kernels file, config fragments and
// patch series, in a directory that the path-based loaders (kernel
// fragments, series, catalogs, TOML files) read like the source tree.
package assets

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"fusevm"
)

// Root returns a directory holding configs/ and patches/ exactly as
// embedded: cacheDir/assets/<digest>, where the digest covers every
// embedded path and content, so binaries built from different trees use
// different directories. The directory is written once, into a temporary
// sibling renamed into place, and compared with the embedded files at each
// call: one with a file changed, missing or added is written again.
func Root(cacheDir string) (string, error) {
	return root(fusevm.Files, cacheDir)
}

// root is Root for the files of fsys.
func root(fsys fs.FS, cacheDir string) (string, error) {
	files, sum, err := read(fsys)
	if err != nil {
		return "", fmt.Errorf("embedded configuration: %w", err)
	}
	dir := filepath.Join(cacheDir, "assets", sum)
	if same(dir, files) {
		return dir, nil
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("write the configuration: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, ".tmp-")
	if err != nil {
		return "", fmt.Errorf("write the configuration: %w", err)
	}
	defer os.RemoveAll(tmp)
	for name, data := range files {
		p := filepath.Join(tmp, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", fmt.Errorf("write the configuration: %w", err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return "", fmt.Errorf("write the configuration: %w", err)
		}
	}
	// A damaged copy is moved aside first, then replaced whole.
	if _, err := os.Stat(dir); err == nil {
		old := tmp + "-damaged"
		if err := os.Rename(dir, old); err != nil {
			return "", fmt.Errorf("replace the damaged configuration %s: %w", dir, err)
		}
		defer os.RemoveAll(old)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if same(dir, files) { // another fusevm wrote it meanwhile
			return dir, nil
		}
		return "", fmt.Errorf("write the configuration: %w", err)
	}
	return dir, nil
}

// read reads every file of fsys, in lexical order, hashing the paths and
// contents into a 24-hex-digit digest.
func read(fsys fs.FS) (map[string][]byte, string, error) {
	files := map[string][]byte{}
	h := sha256.New()
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		files[name] = data
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(data))
		h.Write(data)
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return files, hex.EncodeToString(h.Sum(nil))[:24], nil
}

// same reports whether dir holds exactly files: the same paths, no others,
// with the same contents.
func same(dir string, files map[string][]byte) bool {
	seen := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		want, ok := files[filepath.ToSlash(rel)]
		if !ok {
			return errors.New("extra file")
		}
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, want) {
			return errors.New("changed file")
		}
		seen++
		return nil
	})
	return err == nil && seen == len(files)
}
