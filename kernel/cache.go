package kernel

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// Cache is the on-disk cache root. Its layout:
//
//	src/<id>/linux     extracted source trees and unpacked prebuilt
//	                   kernel packages (read-only by convention)
//	downloads/         tarballs fetched by URL, named by sha256
//	git/<hash>.git     shallow mirrors of remote git repositories
//	apt/               private apt state for Debian sources
//	work/<id>/linux    per-source build workspaces (hardlinked copies)
//	kernels/<key>/     published build artifacts (bzImage, config, meta.json)
//	ccache/            the compiler cache
//	locks/             flock files
type Cache struct {
	Root string
}

// DefaultCacheDir returns $FUSEVM_CACHE, else $XDG_CACHE_HOME/fusevm, else
// ~/.cache/fusevm.
func DefaultCacheDir() string {
	if d := os.Getenv("FUSEVM_CACHE"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "fusevm")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "fusevm-cache")
	}
	return filepath.Join(home, ".cache", "fusevm")
}

// Path joins elements under the cache root.
func (c *Cache) Path(elem ...string) string {
	return filepath.Join(append([]string{c.Root}, elem...)...)
}

// Lock takes an exclusive flock named name under locks/, blocking until it
// is free. The returned function releases it.
func (c *Cache) Lock(name string) (unlock func(), err error) {
	dir := c.Path("locks")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, name+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	return func() { unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
}

// Publish atomically makes the directory built by fill appear at final. fill
// writes into a fresh temporary sibling; on any error (disk full included)
// the temporary directory is removed and final is untouched. If final
// already exists, Publish keeps it and discards the new copy.
func Publish(final string, fill func(tmp string) error) error {
	parent := filepath.Dir(final)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(parent, ".tmp-"+filepath.Base(final)+"-"+randHex(4))
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return err
	}
	if err := fill(tmp); err != nil {
		os.RemoveAll(tmp)
		return annotateNoSpace(err, parent)
	}
	if err := syncDir(tmp); err != nil {
		os.RemoveAll(tmp)
		return annotateNoSpace(err, parent)
	}
	if err := os.Rename(tmp, final); err != nil {
		os.RemoveAll(tmp)
		if _, statErr := os.Stat(final); statErr == nil {
			return nil // someone else published first
		}
		return err
	}
	return nil
}

// sweepTempOf removes what interrupted Publish calls for final left
// behind; only final's own temporaries, so that publishing other entries
// of the same directory is never disturbed.
func sweepTempOf(final string) {
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(final), ".tmp-"+filepath.Base(final)+"-*"))
	for _, m := range matches {
		os.RemoveAll(m)
	}
}

func annotateNoSpace(err error, where string) error {
	if errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("disk full while writing the cache in %s (nothing was published): %w", where, err)
	}
	return err
}

func syncDir(dir string) error {
	return filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return f.Sync()
	})
}

// copyFile copies src to dst (a new file with a fresh mtime).
func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// hashFile returns the hex sha256 of a file.
func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
