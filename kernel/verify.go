package kernel

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"fusevm/internal/lazyre"
)

// digestsFile lists the sha256 of every regular file of a published cache
// entry in sha256sum(1) format ("HEX  PATH" lines, paths relative to the
// directory holding it), so that `sha256sum -c SHA256SUMS` checks it too.
const digestsFile = "SHA256SUMS"

// DamageError says why a cache entry failed its check.
type DamageError struct {
	// File is the file at fault, relative to the entry.
	File string
	// Why is what is wrong with it, e.g. "missing" or "sha256 mismatch".
	Why string
}

// Error reads "bzImage damaged (sha256 mismatch)".
func (e *DamageError) Error() string { return e.File + " damaged (" + e.Why + ")" }

// writeDigests records the sha256 of every regular file under dir in
// dir/SHA256SUMS. Publish callers run it last in their fill function.
func writeDigests(dir string) error {
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == digestsFile {
			return err
		}
		sum, err := HashFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s  %s\n", sum, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return fmt.Errorf("record digests of %s: %w", dir, err)
	}
	return os.WriteFile(filepath.Join(dir, digestsFile), []byte(b.String()), 0o644)
}

// checkDigests checks every file dir/SHA256SUMS lists, and that it lists
// the files in need. Damage (a file missing or changed, no or an unreadable
// SHA256SUMS) is a *DamageError.
func checkDigests(dir string, need ...string) error {
	data, err := os.ReadFile(filepath.Join(dir, digestsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return &DamageError{File: digestsFile, Why: "missing: the entry predates digests"}
	}
	if err != nil {
		return fmt.Errorf("check %s: %w", dir, err)
	}
	listed := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" {
			continue
		}
		want, name, ok := strings.Cut(line, "  ")
		if !ok || !sha256Re().MatchString(want) || name == "" {
			return &DamageError{File: digestsFile, Why: "unreadable"}
		}
		listed[name] = true
		got, err := HashFile(filepath.Join(dir, filepath.FromSlash(name)))
		if errors.Is(err, fs.ErrNotExist) {
			return &DamageError{File: name, Why: "missing"}
		}
		if err != nil {
			return fmt.Errorf("check %s: %w", dir, err)
		}
		if got != want {
			return &DamageError{File: name, Why: "sha256 mismatch"}
		}
	}
	if len(listed) == 0 {
		return &DamageError{File: digestsFile, Why: "lists no files"}
	}
	for _, n := range need {
		if !listed[n] {
			return &DamageError{File: n, Why: "not in " + digestsFile}
		}
	}
	return nil
}

// checkNamedBy checks that the sha256 of the file at p begins with prefix,
// for entries named by their content.
func checkNamedBy(p, prefix string) error {
	sum, err := HashFile(p)
	if err != nil {
		return fmt.Errorf("check %s: %w", p, err)
	}
	if !strings.HasPrefix(sum, prefix) {
		return &DamageError{File: filepath.Base(p), Why: "sha256 mismatch"}
	}
	return nil
}

// dropDamaged removes the cache entry at p, which failed its check with
// err, saying so in one line through log ("kernel KEY: cached bzImage
// damaged (sha256 mismatch), rebuilding"), so that the caller makes it
// again. An err that is no damage (the check itself failed) is returned
// instead. The caller holds the entry's lock.
func dropDamaged(p string, err error, log Logger, what, redo string) error {
	var de *DamageError
	if !errors.As(err, &de) {
		return fmt.Errorf("%s: %w", what, err)
	}
	note(log, fmt.Sprintf("%s: cached %v, %s", what, de, redo))
	if err := discard(p); err != nil {
		return fmt.Errorf("%s: remove the damaged copy: %w", what, err)
	}
	return nil
}

// printer is a Logger that can also print a lasting plain line (the CLI's
// progress can; a Stage line is overwritten by the next one on a terminal).
type printer interface {
	Printf(format string, a ...any)
}

// note prints msg as one lasting line through log if it can, else as a
// stage.
func note(log Logger, msg string) {
	if p, ok := log.(printer); ok {
		p.Printf("==> %s", msg)
		return
	}
	log.Stage(msg)
}

// Kinds are the kinds of cache entries, in the order Verify lists them:
// each is a directory of the cache root whose children are the entries,
// except ccache and apt, which are one entry each.
var Kinds = []string{"kernels", "src", "work", "downloads", "git", "initramfs", "ccache", "apt"}

// EntryStatus describes one cache entry.
type EntryStatus struct {
	// Kind is one of Kinds.
	Kind string
	// Name is the entry's path under the cache root, e.g. "kernels/KEY".
	Name string
	// Size is the disk space of the entry's files and directories. A file
	// hardlinked from an entry listed before (a workspace shares most of
	// its files with its source tree) counts there only, so that sizes add
	// up to what the cache takes.
	Size int64
	// Time is the entry's last use or change: the newest mtime in it.
	Time time.Time
	// Checked says whether the entry's digests were checked: built
	// kernels, unpacked prebuilt kernels, guest images and downloads have
	// them.
	Checked bool
	// Damage is why a checked entry failed; nil when it passed or was not
	// checked.
	Damage error
	// Locked says that a running fusevm holds the entry's lock.
	Locked bool

	files []fileUse
}

// fileUse is one file (or directory) of an entry and the space it takes.
type fileUse struct {
	dev, ino uint64
	size     int64
}

var initramfsNameRe = lazyre.New(`^([0-9a-f]{24})\.cpio$`)

// Verify lists every cache entry with its kind, size and last use, checks
// the digests of those that have them, and says which ones are locked. It
// changes no entry.
func (c *Cache) Verify() ([]EntryStatus, error) {
	entries, err := c.scan()
	if err != nil {
		return nil, err
	}
	for i := range entries {
		e := &entries[i]
		e.Checked, e.Damage = c.check(*e)
		unlock, ok, err := c.tryLocks(c.lockNames(*e))
		if err != nil {
			return nil, err
		}
		if ok {
			unlock()
		}
		e.Locked = !ok
	}
	return entries, nil
}

// check checks the entry's digests where it has them.
func (c *Cache) check(e EntryStatus) (checked bool, damage error) {
	base := path.Base(e.Name)
	switch {
	case e.Kind == "kernels":
		return true, loadMeta(artifactAt(c, base))
	case e.Kind == "src" && strings.HasPrefix(base, imageIDPrefix):
		return true, checkDigests(c.Path(e.Name, "linux"))
	case e.Kind == "downloads" && sha256Re().MatchString(base):
		return true, checkNamedBy(c.Path(e.Name), base)
	case e.Kind == "initramfs" && initramfsNameRe().MatchString(base):
		return true, checkNamedBy(c.Path(e.Name), initramfsNameRe().FindStringSubmatch(base)[1])
	}
	return false, nil
}

// lockNames are the locks held while the entry is written or read by a
// build: besides its own, a source tree or git mirror is read under the
// lock of the workspace it fills, and ccache is used by every build.
func (c *Cache) lockNames(e EntryStatus) []string {
	base := path.Base(e.Name)
	switch e.Kind {
	case "kernels":
		return []string{"build-" + base}
	case "src":
		if strings.HasPrefix(base, imageIDPrefix) {
			return []string{"src-" + base}
		}
		return []string{"src-" + base, "work-" + (&Tree{ID: base}).lineage()}
	case "work":
		return []string{"work-" + base}
	case "downloads":
		if len(base) >= 16 {
			return []string{"download-" + base[:16]}
		}
	case "git":
		names := []string{"git-" + strings.TrimSuffix(base, ".git")}
		if mirror, err := filepath.Abs(c.Path(e.Name)); err == nil {
			names = append(names, "work-"+(&Tree{Repo: mirror}).lineage())
		}
		return names
	case "ccache":
		locks, _ := filepath.Glob(c.Path("locks", "work-*.lock"))
		var names []string
		for _, l := range locks {
			names = append(names, strings.TrimSuffix(filepath.Base(l), ".lock"))
		}
		return names
	case "apt":
		return []string{"apt"}
	}
	return nil
}

// tryLocks takes every lock in names if all are free; ok is false (and
// none is held) when one is not.
func (c *Cache) tryLocks(names []string) (unlock func(), ok bool, err error) {
	var held []func()
	release := func() {
		for _, u := range held {
			u()
		}
	}
	for _, n := range names {
		u, ok, err := c.tryLock(n)
		if err != nil || !ok {
			release()
			return nil, false, err
		}
		held = append(held, u)
	}
	return release, true, nil
}

// scan lists the entries of every kind with their sizes and times.
func (c *Cache) scan() ([]EntryStatus, error) {
	var out []EntryStatus
	for _, kind := range Kinds {
		names, err := c.entryNames(kind)
		if err != nil {
			return nil, fmt.Errorf("cache %s: %w", kind, err)
		}
		for _, name := range names {
			e := EntryStatus{Kind: kind, Name: name}
			if err := e.walk(c.Path(name)); err != nil {
				return nil, fmt.Errorf("cache %s: %w", name, err)
			}
			if e.files != nil {
				out = append(out, e)
			}
		}
	}
	account(out)
	return out, nil
}

// entryNames lists the entries of a kind, leaving out the temporaries
// (".tmp-*") of publications and removals in progress.
func (c *Cache) entryNames(kind string) ([]string, error) {
	if kind == "ccache" || kind == "apt" {
		if _, err := os.Lstat(c.Path(kind)); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, nil
			}
			return nil, err
		}
		return []string{kind}, nil
	}
	ds, err := os.ReadDir(c.Path(kind))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	var names []string
	for _, d := range ds {
		if !strings.HasPrefix(d.Name(), ".") {
			names = append(names, kind+"/"+d.Name())
		}
	}
	return names, err
}

// walk records the files under p and their newest mtime in e. Files that
// vanish meanwhile (a build at work) are skipped; an entry that vanished
// whole has no files.
func (e *EntryStatus) walk(p string) error {
	return filepath.WalkDir(p, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if t := info.ModTime(); t.After(e.Time) {
			e.Time = t
		}
		f := fileUse{size: info.Size()}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			f = fileUse{dev: st.Dev, ino: st.Ino, size: st.Blocks * 512}
		}
		e.files = append(e.files, f)
		return nil
	})
}

// account sets each entry's Size: a file counts for the first entry that
// holds it.
func account(entries []EntryStatus) {
	seen := map[fileUse]bool{}
	for i := range entries {
		entries[i].Size = 0
		for _, f := range entries[i].files {
			if f.ino == 0 || !seen[f] {
				seen[f] = true
				entries[i].Size += f.size
			}
		}
	}
}

// KindSizes adds up the entries' sizes per kind.
func KindSizes(entries []EntryStatus) map[string]int64 {
	sizes := map[string]int64{}
	for _, e := range entries {
		sizes[e.Kind] += e.Size
	}
	return sizes
}

// PruneResult is what Prune did.
type PruneResult struct {
	// Removed lists the entries removed, oldest first.
	Removed []EntryStatus
	// Skipped lists the entries that were due but in use (locked).
	Skipped []EntryStatus
	// Before and After are the sizes per kind.
	Before, After map[string]int64
}

// Prune removes whole entries of kind (of every kind when kind is ""),
// least recently used first, until the entries of that kind take at most
// maxSize bytes. An entry in use (its lock held) is skipped; any other is
// removed under its lock and atomically (renamed away, then deleted).
// Digests are not checked.
func (c *Cache) Prune(maxSize int64, kind string) (*PruneResult, error) {
	if kind != "" && !slices.Contains(Kinds, kind) {
		return nil, fmt.Errorf("unknown cache kind %q (want one of %s)", kind, strings.Join(Kinds, ", "))
	}
	entries, err := c.scan()
	if err != nil {
		return nil, err
	}
	res := &PruneResult{Before: KindSizes(entries)}
	var due []EntryStatus
	for _, e := range entries {
		if kind == "" || e.Kind == kind {
			due = append(due, e)
		}
	}
	slices.SortStableFunc(due, func(a, b EntryStatus) int { return a.Time.Compare(b.Time) })
	used := func() int64 {
		var n int64
		for k, s := range KindSizes(entries) {
			if kind == "" || k == kind {
				n += s
			}
		}
		return n
	}
	for _, d := range due {
		if used() <= maxSize {
			break
		}
		i := slices.IndexFunc(entries, func(e EntryStatus) bool { return e.Name == d.Name })
		e := entries[i] // its size now that earlier entries are gone
		removed, err := c.remove(e)
		if err != nil {
			res.After = KindSizes(entries)
			return res, err
		}
		if !removed {
			res.Skipped = append(res.Skipped, e)
			continue
		}
		res.Removed = append(res.Removed, e)
		entries = slices.Delete(entries, i, i+1)
		account(entries)
	}
	res.After = KindSizes(entries)
	return res, nil
}

// remove deletes entry e under its locks; it reports false, doing
// nothing, when one of them is held.
func (c *Cache) remove(e EntryStatus) (bool, error) {
	unlock, ok, err := c.tryLocks(c.lockNames(e))
	if err != nil || !ok {
		return false, err
	}
	defer unlock()
	if err := discard(c.Path(e.Name)); err != nil {
		return false, fmt.Errorf("remove %s: %w", e.Name, err)
	}
	return true, nil
}
