package kernel

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

func fakeSpec(t *testing.T, c *Cache) BuildSpec {
	t.Helper()
	dir := fakeTree(t, "FUSE_FS")
	tree, err := resolveDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	tree.Version = "7.3.0"
	frag := writeFile(t, filepath.Join(t.TempDir(), "base.config"), "CONFIG_FUSE_FS=y\n")
	return BuildSpec{Tree: tree, Fragments: []string{frag}, Jobs: 1}
}

func builds(t *testing.T, c *Cache, spec BuildSpec) int {
	data, _ := os.ReadFile(c.Path("work", spec.Tree.ID, "builds"))
	return strings.Count(string(data), "x")
}

func TestBuildCachesByKey(t *testing.T) {
	c := &Cache{Root: t.TempDir()}
	spec := fakeSpec(t, c)
	ctx := context.Background()
	a1, err := Build(ctx, c, spec, NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	if a1.Cached || builds(t, c, spec) != 1 {
		t.Fatalf("first build: cached=%v builds=%d", a1.Cached, builds(t, c, spec))
	}
	a2, err := Build(ctx, c, spec, NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	if !a2.Cached || a2.Key != a1.Key || builds(t, c, spec) != 1 {
		t.Fatalf("second build: cached=%v key %s vs %s builds=%d", a2.Cached, a2.Key, a1.Key, builds(t, c, spec))
	}
	// A fragment change makes a new key.
	spec2 := spec
	spec2.Fragments = []string{writeFile(t, filepath.Join(t.TempDir(), "base.config"), "CONFIG_FUSE_FS=y\nCONFIG_64BIT=y\n")}
	k2, _, _ := Key(spec2)
	if k2 == a1.Key {
		t.Error("fragment content is not in the key")
	}
	// A patch makes a new key, and so does changing one byte of it.
	p := Patch{Name: "0001-x.patch", Data: []byte("a")}
	spec3 := spec
	spec3.Series = &Series{Patches: []Patch{p}}
	k3, _, _ := Key(spec3)
	p.Data = []byte("b")
	spec3.Series = &Series{Patches: []Patch{p}}
	k4, _, _ := Key(spec3)
	if k3 == a1.Key || k3 == k4 {
		t.Error("patch content is not in the key")
	}
}

func TestBuildConcurrentSameKeyBuildsOnce(t *testing.T) {
	c := &Cache{Root: t.TempDir()}
	spec := fakeSpec(t, c)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, errs[i] = Build(context.Background(), c, spec, NopLogger{})
		}(i)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := builds(t, c, spec); n != 1 {
		t.Errorf("built %d times, want 1", n)
	}
}

func TestBuildErrorNamesFile(t *testing.T) {
	c := &Cache{Root: t.TempDir()}
	spec := fakeSpec(t, c)
	writeFile(t, filepath.Join(spec.Tree.Dir, "src.c"), "int x;\n#error nope\n")
	tree, _ := resolveDir(spec.Tree.Dir)
	spec.Tree = tree
	_, err := Build(context.Background(), c, spec, NopLogger{})
	var be *BuildError
	if !errors.As(err, &be) {
		t.Fatalf("want BuildError, got %v", err)
	}
	if be.File != "src.c:2" || be.Msg != "boom" || !strings.Contains(be.Tail, "error: boom") {
		t.Errorf("build error: %+v", be)
	}
	if entries, _ := os.ReadDir(c.Path("kernels")); len(entries) != 0 {
		t.Errorf("a failed build published %d entries", len(entries))
	}
}

func TestPublishFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	final := filepath.Join(dir, "kernels", "k1")
	err := Publish(final, func(tmp string) error {
		os.WriteFile(filepath.Join(tmp, "bzImage"), []byte("half"), 0o644)
		return &os.PathError{Op: "write", Path: "bzImage", Err: syscall.ENOSPC}
	})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("want a disk-full error, got %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "kernels"))
	if len(entries) != 0 {
		t.Errorf("left %d entries behind", len(entries))
	}
}

func TestWorkspaceNeverWritesThroughToTree(t *testing.T) {
	c := &Cache{Root: t.TempDir()}
	spec := fakeSpec(t, c)
	orig, _ := os.ReadFile(filepath.Join(spec.Tree.Dir, "fs/fuse/dev.c"))
	spec.Series = &Series{Patches: []Patch{mustPatch(t, "0001-a.patch", patchA)}}
	if _, err := Build(context.Background(), c, spec, NopLogger{}); err != nil {
		t.Fatal(err)
	}
	now, _ := os.ReadFile(filepath.Join(spec.Tree.Dir, "fs/fuse/dev.c"))
	if string(now) != string(orig) {
		t.Fatal("applying a patch in the workspace changed the source tree")
	}
	ws, _ := os.ReadFile(c.Path("work", spec.Tree.ID, "linux", "fs/fuse/dev.c"))
	if !strings.Contains(string(ws), "line 2 patched") {
		t.Fatalf("workspace not patched: %q", ws)
	}
	// Back to the baseline: the workspace file is restored.
	spec.Series = nil
	if _, err := Build(context.Background(), c, spec, NopLogger{}); err != nil {
		t.Fatal(err)
	}
	ws, _ = os.ReadFile(c.Path("work", spec.Tree.ID, "linux", "fs/fuse/dev.c"))
	if string(ws) != string(orig) {
		t.Fatalf("workspace not restored: %q", ws)
	}
	// Swapping patch sets that touch no Kconfig file reuses the .config.
	if data, _ := os.ReadFile(c.Path("work", spec.Tree.ID, "configures")); strings.Count(string(data), "x") != 1 {
		t.Errorf("configured %d times for two builds with the same fragments", strings.Count(string(data), "x"))
	}
}
