package kernel

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"fusevm/internal/atomicfile"
)

// Cache is the on-disk cache root. Its layout:
//
//	src/<id>/linux     extracted source trees and unpacked prebuilt
//	                   kernel packages (read-only by convention)
//	downloads/         tarballs fetched by URL, named by sha256
//	git/<hash>.git     shallow mirrors of remote git repositories
//	apt/               private apt state for Debian sources
//	work/<id>/linux    per-source build workspaces (hardlinked copies)
//	kernels/<key>/     published build artifacts (bzImage, vmlinux, config,
//	                   build.log, meta.json)
//	initramfs/         guest images, named by their sha256
//	ccache/            the compiler cache
//	locks/             flock files
//
// Built kernels and unpacked prebuilt kernel packages carry a SHA256SUMS
// file, checked on every use (see Verify).
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

// Lock takes an exclusive flock named name under locks/, waiting until it
// is free or ctx is done (another fusevm may hold it for a whole build, and
// a waiting run must still stop on an interrupt). The returned function
// releases it.
func (c *Cache) Lock(ctx context.Context, name string) (unlock func(), err error) {
	for {
		unlock, ok, err := c.tryLock(name)
		if err != nil || ok {
			return unlock, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the cache lock %s: %w", name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// tryLock takes the flock named name if it is free; ok is false when
// someone else holds it.
func (c *Cache) tryLock(name string) (unlock func(), ok bool, err error) {
	unlock, err = c.flock(name, unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return nil, false, nil
	}
	return unlock, err == nil, err
}

// flock opens locks/<name>.lock and applies flock(2) operation how to it.
func (c *Cache) flock(name string, how int) (unlock func(), err error) {
	dir := c.Path("locks")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, name+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
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

// discard removes the cache entry at path (a directory or a file) whole:
// it is renamed to a temporary sibling first, so that readers find all of
// it or nothing, then deleted. An entry that is not there is no error.
func discard(path string) error {
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-"+randHex(4))
	if err := os.Rename(path, tmp); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	return os.RemoveAll(tmp)
}

// markUsed sets the mtime of the cache entry at path to now: the last use
// that Verify reports and Prune goes by. Best effort: a read-only cache
// still serves.
func markUsed(path string) {
	now := time.Now()
	os.Chtimes(path, now, now)
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

// CopyFile copies src to dst: a new file (or one truncated) with mode
// before the umask and a fresh mtime.
func CopyFile(src, dst string, mode os.FileMode) error {
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

// HashFile returns the hex sha256 of the file at path, as SHA256SUMS lists
// it.
func HashFile(path string) (string, error) {
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

// hashRemembered is HashFile for a large file of the cache that every run
// hashes (a source package): the sum is kept beside it in path.sha256 with
// the size and modification time it was taken at, and taken again when
// either differs.
func hashRemembered(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	stamp := fmt.Sprintf("%d %d ", st.Size(), st.ModTime().UnixNano())
	memo := path + ".sha256"
	if data, err := os.ReadFile(memo); err == nil {
		if sum, ok := strings.CutPrefix(strings.TrimSpace(string(data)), stamp); ok && len(sum) == 64 {
			return sum, nil
		}
	}
	sum, err := HashFile(path)
	if err != nil {
		return "", err
	}
	atomicfile.Write(memo, []byte(stamp+sum+"\n"), 0o644) // best effort: else hashed again next time
	return sum, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// HumanSize renders a byte count with a binary unit: 512B, 4.0K, 1.8G.
func HumanSize(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%dB", n)
	}
	f, unit := float64(n)/1024, 0
	for f >= 1024 && unit < 4 {
		f /= 1024
		unit++
	}
	return fmt.Sprintf("%.1f%c", f, "KMGTP"[unit])
}

// FormatSizes renders sizes per kind (KindSizes), in Kinds order, and
// their total: "kernels 52.0M, src 1.8G = 1.9G", or "empty".
func FormatSizes(sizes map[string]int64) string {
	var parts []string
	var total int64
	for _, k := range Kinds {
		if n, ok := sizes[k]; ok {
			parts = append(parts, k+" "+HumanSize(n))
			total += n
		}
	}
	if len(parts) == 0 {
		return "empty"
	}
	return strings.Join(parts, ", ") + " = " + HumanSize(total)
}

// Status says how the entry's check went: "ok", "DAMAGED: " and why, or
// "-" when it has nothing to check; " (in use)" follows when it is
// locked.
func (e EntryStatus) Status() string {
	status := "-"
	switch {
	case e.Damage != nil:
		status = "DAMAGED: " + e.Damage.Error()
	case e.Checked:
		status = "ok"
	}
	if e.Locked {
		status += " (in use)"
	}
	return status
}

// WriteEntries writes what Verify found as `fusevm cache verify` prints
// it: a table of the entries (kind, name, size, last use, status), then
// their sizes per kind.
func WriteEntries(w io.Writer, entries []EntryStatus) {
	fmt.Fprintf(w, "%-10s %-40s %8s  %-16s  %s\n", "KIND", "ENTRY", "SIZE", "LAST USE", "STATUS")
	for _, e := range entries {
		fmt.Fprintf(w, "%-10s %-40s %8s  %-16s  %s\n", e.Kind, e.Name, HumanSize(e.Size), e.Time.Format("2006-01-02 15:04"), e.Status())
	}
	fmt.Fprintln(w, "size:", FormatSizes(KindSizes(entries)))
}

// Damaged is nil when none of the entries is damaged, else an error that
// counts those that are.
func Damaged(entries []EntryStatus) error {
	damaged := 0
	for _, e := range entries {
		if e.Damage != nil {
			damaged++
		}
	}
	if damaged > 0 {
		return fmt.Errorf("%d of %d cache entries damaged (kernels, prebuilt images and guest images are made again on their next use)", damaged, len(entries))
	}
	return nil
}

// WriteText writes what Prune did as `fusevm cache prune` prints it: the
// sizes before, each entry removed and each kept because it was in use,
// the sizes after.
func (r *PruneResult) WriteText(w io.Writer) {
	fmt.Fprintln(w, "before:", FormatSizes(r.Before))
	for _, e := range r.Removed {
		fmt.Fprintf(w, "removed %-40s %8s  last used %s\n", e.Name, HumanSize(e.Size), e.Time.Format("2006-01-02 15:04"))
	}
	for _, e := range r.Skipped {
		fmt.Fprintf(w, "kept    %-40s %8s  in use\n", e.Name, HumanSize(e.Size))
	}
	fmt.Fprintln(w, "after: ", FormatSizes(r.After))
}
