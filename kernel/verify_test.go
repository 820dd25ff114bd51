package kernel

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// stages records the stages a Logger is told about.
type stages struct{ lines []string }

func (s *stages) Stage(what string)          { s.lines = append(s.lines, what) }
func (s *stages) Progress(string)            {}
func (s *stages) Done(string, time.Duration) {}

// printed is a Logger that can also print lasting lines, as the CLI's.
type printed struct {
	stages
	printf []string
}

func (p *printed) Printf(format string, a ...any) {
	p.printf = append(p.printf, fmt.Sprintf(format, a...))
}

func TestNoteIsALastingLine(t *testing.T) {
	var p printed
	note(&p, "kernel k: cached bzImage damaged (sha256 mismatch), rebuilding")
	if len(p.lines) != 0 || !slices.Equal(p.printf, []string{"==> kernel k: cached bzImage damaged (sha256 mismatch), rebuilding"}) {
		t.Errorf("stages %q, printed %q", p.lines, p.printf)
	}
}

// publishFake publishes an artifact under key as Build does, from a fake
// build output of the given sizes, and returns it.
func publishFake(t testing.TB, c *Cache, key string, bzSize, vmlinuxSize int) *Artifact {
	t.Helper()
	out := t.TempDir()
	for name, size := range map[string]int{"arch/x86/boot/bzImage": bzSize, "vmlinux": vmlinuxSize, ".config": 64} {
		data := make([]byte, size)
		rand.Read(data)
		if err := os.MkdirAll(filepath.Dir(filepath.Join(out, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(out, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	logPath := filepath.Join(out, "build.log")
	os.WriteFile(logPath, []byte("  CC      fs/fuse/dev.o\n"), 0o644)
	art := artifactAt(c, key)
	if err := publishArtifact(art, out, logPath, Meta{Source: "fake", Version: "7.3.0"}); err != nil {
		t.Fatal(err)
	}
	return art
}

// age sets the mtime of everything in the entry at path to when.
func age(t *testing.T, path string, when time.Time) {
	t.Helper()
	err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, when, when)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// entry finds an entry by name in a Verify or Prune listing.
func entry(t *testing.T, entries []EntryStatus, name string) EntryStatus {
	t.Helper()
	i := slices.IndexFunc(entries, func(e EntryStatus) bool { return e.Name == name })
	if i < 0 {
		t.Fatalf("no entry %s in %v", name, names(entries))
	}
	return entries[i]
}

func names(entries []EntryStatus) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Name)
	}
	return out
}

func TestDamagedArtifactIsRebuilt(t *testing.T) {
	cases := []struct {
		name   string
		damage func(art *Artifact) error
		want   string
	}{
		{"truncated bzImage", func(a *Artifact) error { return os.Truncate(a.BzImage, 100) }, "bzImage damaged (sha256 mismatch)"},
		{"flipped byte", func(a *Artifact) error {
			f, err := os.OpenFile(a.Vmlinux, os.O_RDWR, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			b := make([]byte, 1)
			f.ReadAt(b, 1000)
			_, err = f.WriteAt([]byte{b[0] ^ 1}, 1000)
			return err
		}, "vmlinux damaged (sha256 mismatch)"},
		{"deleted vmlinux", func(a *Artifact) error { return os.Remove(a.Vmlinux) }, "vmlinux damaged (missing)"},
		{"entry without digests", func(a *Artifact) error { return os.Remove(filepath.Join(a.Dir, digestsFile)) }, "SHA256SUMS damaged (missing: the entry predates digests)"},
		{"vmlinux left out of the digests", func(a *Artifact) error {
			p := filepath.Join(a.Dir, digestsFile)
			data, _ := os.ReadFile(p)
			var keep []string
			for _, l := range strings.SplitAfter(string(data), "\n") {
				if !strings.HasSuffix(l, "  vmlinux\n") {
					keep = append(keep, l)
				}
			}
			return os.WriteFile(p, []byte(strings.Join(keep, "")), 0o644)
		}, "vmlinux damaged (not in SHA256SUMS)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &Cache{Root: t.TempDir()}
			art := publishFake(t, c, "k1", 2<<10, 64<<10)
			if cached, err := reuse(artifactAt(c, "k1"), NopLogger{}); err != nil || !cached {
				t.Fatalf("intact artifact: cached=%v err=%v", cached, err)
			}
			if err := tc.damage(art); err != nil {
				t.Fatal(err)
			}
			entries, err := c.Verify()
			if err != nil {
				t.Fatal(err)
			}
			e := entry(t, entries, "kernels/k1")
			if !e.Checked || e.Damage == nil || e.Damage.Error() != tc.want {
				t.Errorf("Verify: checked=%v damage=%v, want %q", e.Checked, e.Damage, tc.want)
			}
			var log stages
			again := artifactAt(c, "k1")
			cached, err := reuse(again, &log)
			if err != nil || cached || again.Cached {
				t.Fatalf("damaged artifact served: cached=%v err=%v", cached, err)
			}
			if want := "kernel k1: cached " + tc.want + ", rebuilding"; !slices.Equal(log.lines, []string{want}) {
				t.Errorf("notes %q, want %q", log.lines, want)
			}
			if _, err := os.Stat(art.Dir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("damaged entry still there: %v", err)
			}
			if left, _ := filepath.Glob(c.Path("kernels", ".tmp-*")); len(left) != 0 {
				t.Errorf("removal left %v", left)
			}
		})
	}
}

func TestBuildRebuildsDamagedKernel(t *testing.T) {
	c := &Cache{Root: t.TempDir()}
	spec := fakeSpec(t, c)
	ctx := context.Background()
	a1, err := Build(ctx, c, spec, NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(a1.BzImage)
	if err := os.Truncate(a1.BzImage, 3); err != nil {
		t.Fatal(err)
	}
	var log stages
	a2, err := Build(ctx, c, spec, &log)
	if err != nil {
		t.Fatal(err)
	}
	if a2.Cached || builds(t, c, spec) != 2 {
		t.Errorf("damaged kernel: cached=%v builds=%d, want a rebuild", a2.Cached, builds(t, c, spec))
	}
	if !slices.Contains(log.lines, "kernel "+a1.Key+": cached bzImage damaged (sha256 mismatch), rebuilding") {
		t.Errorf("no note about the damage in %q", log.lines)
	}
	if now, _ := os.ReadFile(a2.BzImage); !bytes.Equal(now, good) {
		t.Errorf("rebuilt bzImage holds %q, want %q", now, good)
	}
	a3, err := Build(ctx, c, spec, NopLogger{})
	if err != nil || !a3.Cached || builds(t, c, spec) != 2 {
		t.Errorf("after the rebuild: cached=%v builds=%d err=%v", a3.Cached, builds(t, c, spec), err)
	}
}

func TestEnsureCheckedUnpacksDamagedAgain(t *testing.T) {
	c := &Cache{Root: t.TempDir()}
	calls := 0
	extract := func(dst string) error {
		calls++
		writeFile(t, filepath.Join(dst, "boot", "vmlinuz-7.3"), "kernel")
		return nil
	}
	for i := 0; i < 2; i++ {
		if err := ensureChecked(context.Background(), c, "img-1", NopLogger{}, "extract", extract); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 1 {
		t.Fatalf("extracted %d times, want once", calls)
	}
	vmlinuz := c.Path("src", "img-1", "linux", "boot", "vmlinuz-7.3")
	os.WriteFile(vmlinuz, []byte("kernal"), 0o644)
	var log stages
	if err := ensureChecked(context.Background(), c, "img-1", &log, "extract", extract); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(vmlinuz); calls != 2 || string(data) != "kernel" {
		t.Errorf("damaged tree: extracted %d times, vmlinuz %q", calls, data)
	}
	if want := "image img-1: cached boot/vmlinuz-7.3 damaged (sha256 mismatch), unpacking again"; !slices.Contains(log.lines, want) {
		t.Errorf("notes %q lack %q", log.lines, want)
	}
}

// fillCache writes one entry of several kinds, good or damaged, and
// returns the cache.
func fillCache(t *testing.T) *Cache {
	t.Helper()
	c := &Cache{Root: t.TempDir()}
	publishFake(t, c, "good", 4<<10, 64<<10)
	bad := publishFake(t, c, "bad", 4<<10, 64<<10)
	os.Truncate(bad.BzImage, 10)
	cpio := []byte("070701 an image")
	sum := sha256.Sum256(cpio)
	writeFile(t, c.Path("initramfs", hex.EncodeToString(sum[:12])+".cpio"), string(cpio))
	writeFile(t, c.Path("initramfs", strings.Repeat("0", 24)+".cpio"), string(cpio))
	tarSum := sha256.Sum256([]byte("tarball"))
	writeFile(t, c.Path("downloads", hex.EncodeToString(tarSum[:])), "tarball")
	writeFile(t, c.Path("work", "dir-1", "linux", "Makefile"), "VERSION = 7\n")
	writeFile(t, c.Path("ccache", "0", "stats"), "stats\n")
	if err := ensureChecked(context.Background(), c, "img-2", NopLogger{}, "extract", func(dst string) error {
		return os.WriteFile(filepath.Join(dst, "vmlinuz"), []byte("kernel"), 0o644)
	}); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestVerifyListsEntries(t *testing.T) {
	c := fillCache(t)
	entries, err := c.Verify()
	if err != nil {
		t.Fatal(err)
	}
	goodCPIO := "initramfs/" + func() string { s := sha256.Sum256([]byte("070701 an image")); return hex.EncodeToString(s[:12]) }() + ".cpio"
	want := map[string]string{ // name -> "ok", "damaged" or "unchecked"
		"kernels/good": "ok",
		"kernels/bad":  "damaged",
		"src/img-2":    "ok",
		"work/dir-1":   "unchecked",
		"downloads/" + func() string { s := sha256.Sum256([]byte("tarball")); return hex.EncodeToString(s[:]) }(): "ok",
		goodCPIO: "ok",
		"initramfs/" + strings.Repeat("0", 24) + ".cpio": "damaged",
		"ccache": "unchecked",
	}
	if len(entries) != len(want) {
		t.Errorf("entries %v, want %d", names(entries), len(want))
	}
	var kinds []string
	for _, e := range entries {
		state := "unchecked"
		switch {
		case e.Damage != nil:
			state = "damaged"
		case e.Checked:
			state = "ok"
		}
		if state != want[e.Name] {
			t.Errorf("%s: %s (damage %v), want %s", e.Name, state, e.Damage, want[e.Name])
		}
		if e.Size <= 0 || e.Time.IsZero() || e.Locked {
			t.Errorf("%s: size %d time %v locked %v", e.Name, e.Size, e.Time, e.Locked)
		}
		if !slices.Contains(kinds, e.Kind) {
			kinds = append(kinds, e.Kind)
		}
	}
	if want := []string{"kernels", "src", "work", "downloads", "initramfs", "ccache"}; !slices.Equal(kinds, want) {
		t.Errorf("kinds listed in order %v, want %v", kinds, want)
	}
	if s := entry(t, entries, "kernels/good").Size; s < 68<<10 {
		t.Errorf("kernel of 68 KiB of files has size %d", s)
	}
}

func TestSizesCountHardlinksOnce(t *testing.T) {
	c := &Cache{Root: t.TempDir()}
	big := writeFile(t, c.Path("src", "dir-1", "linux", "big"), strings.Repeat("x", 256<<10))
	os.MkdirAll(c.Path("work", "dir-1", "linux"), 0o755)
	if err := os.Link(big, c.Path("work", "dir-1", "linux", "big")); err != nil {
		t.Skip(err)
	}
	entries, err := c.Verify()
	if err != nil {
		t.Fatal(err)
	}
	src, work := entry(t, entries, "src/dir-1").Size, entry(t, entries, "work/dir-1").Size
	if src < 256<<10 || work >= 256<<10 {
		t.Errorf("src %d, work %d: the shared file must count once, for src", src, work)
	}
	res, err := c.Prune(0, "src")
	if err != nil {
		t.Fatal(err)
	}
	if res.After["src"] != 0 || res.After["work"] < 256<<10 || res.Before["work"] != work {
		t.Errorf("after removing the source tree the workspace holds the file alone: before %v after %v", res.Before, res.After)
	}
}

func TestPruneOldestFirst(t *testing.T) {
	c := fillCache(t)
	now := time.Now()
	ages := map[string]time.Duration{
		"kernels/bad": 5 * time.Hour, "work/dir-1": 4 * time.Hour, "kernels/good": 3 * time.Hour,
		"src/img-2": 2 * time.Hour, "ccache": time.Hour,
	}
	for name, d := range ages {
		age(t, c.Path(name), now.Add(-d))
	}
	entries, err := c.Verify()
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, e := range entries {
		total += e.Size
	}
	if res, err := c.Prune(total, ""); err != nil || len(res.Removed) != 0 {
		t.Fatalf("a cache at its limit lost %v (%v)", names(res.Removed), err)
	}
	// Just over what removing the two oldest entries frees: those two go.
	limit := total - entry(t, entries, "kernels/bad").Size - entry(t, entries, "work/dir-1").Size
	res, err := c.Prune(limit+1, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := names(res.Removed); !slices.Equal(got, []string{"kernels/bad", "work/dir-1"}) {
		t.Errorf("removed %v, want the two oldest", got)
	}
	var before, after int64
	for k, n := range res.Before {
		before += n
		if n != KindSizes(entries)[k] {
			t.Errorf("before: %s %d, Verify says %d", k, n, KindSizes(entries)[k])
		}
	}
	for _, n := range res.After {
		after += n
	}
	if before != total || after != limit {
		t.Errorf("before %d after %d, want %d and %d", before, after, total, limit)
	}
	for _, name := range []string{"kernels/bad", "work/dir-1"} {
		if _, err := os.Stat(c.Path(name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still there", name)
		}
	}
	if _, err := os.Stat(c.Path("kernels", "good", "bzImage")); err != nil {
		t.Errorf("a newer entry was touched: %v", err)
	}

	// A kind alone: every kernel goes, nothing else.
	if res, err = c.Prune(0, "kernels"); err != nil {
		t.Fatal(err)
	}
	if got := names(res.Removed); !slices.Equal(got, []string{"kernels/good"}) || res.After["kernels"] != 0 || res.After["ccache"] != res.Before["ccache"] {
		t.Errorf("prune kernels: removed %v, after %v", got, res.After)
	}
}

func TestPruneSkipsLockedEntries(t *testing.T) {
	c := fillCache(t)
	age(t, c.Path("kernels", "good"), time.Now().Add(-time.Hour))
	unlockBuild, err := c.Lock(context.Background(), "build-good")
	if err != nil {
		t.Fatal(err)
	}
	defer unlockBuild()
	// A build in the workspace holds its lock: the workspace and ccache
	// are in use.
	unlockWork, err := c.Lock(context.Background(), "work-dir-1")
	if err != nil {
		t.Fatal(err)
	}
	defer unlockWork()
	entries, err := c.Verify()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		want := e.Name == "kernels/good" || e.Name == "work/dir-1" || e.Name == "ccache"
		if e.Locked != want {
			t.Errorf("%s: locked %v, want %v", e.Name, e.Locked, want)
		}
	}
	res, err := c.Prune(0, "")
	if err != nil {
		t.Fatal(err)
	}
	kept := names(res.Skipped)
	slices.Sort(kept)
	if !slices.Equal(kept, []string{"ccache", "kernels/good", "work/dir-1"}) {
		t.Errorf("kept %v, want the locked entries", kept)
	}
	if len(res.Removed) != len(entries)-3 {
		t.Errorf("removed %v", names(res.Removed))
	}
	if cached, err := reuse(artifactAt(c, "good"), NopLogger{}); err != nil || !cached {
		t.Errorf("locked kernel no longer whole: cached=%v err=%v", cached, err)
	}
}

// BenchmarkVerifyArtifact measures the check made on every use of a cached
// kernel: a 2 MiB bzImage and a 50 MiB vmlinux hashed.
func BenchmarkVerifyArtifact(b *testing.B) {
	c := &Cache{Root: b.TempDir()}
	publishFake(b, c, "k", 2<<20, 50<<20)
	b.SetBytes(52 << 20)
	for b.Loop() {
		if err := loadMeta(artifactAt(c, "k")); err != nil {
			b.Fatal(err)
		}
	}
}

// TestLockStopsWaitingWhenCancelled: a run waiting for another run's lock
// (a whole kernel build, say) must still stop on an interrupt.
func TestLockStopsWaitingWhenCancelled(t *testing.T) {
	c := &Cache{Root: t.TempDir()}
	unlock, err := c.Lock(context.Background(), "build-x")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := c.Lock(ctx, "build-x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock on a held lock with a cancelled context: %v, want DeadlineExceeded", err)
	}
	unlock()
	again, err := c.Lock(context.Background(), "build-x")
	if err != nil {
		t.Fatalf("Lock after release: %v", err)
	}
	again()
}
