package assets

import (
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"fusevm"
)

// TestRootIsTheSourceTree writes the embedded files and finds every file of
// the source tree's configs/ and patches/ there with the same bytes.
func TestRootIsTheSourceTree(t *testing.T) {
	cache := t.TempDir()
	dir, err := Root(cache)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, top := range []string{"configs", "patches"} {
		filepath.WalkDir(filepath.Join("..", top), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel("..", p)
			want, _ := os.ReadFile(p)
			got, err := os.ReadFile(filepath.Join(dir, rel))
			if err != nil || string(got) != string(want) {
				t.Errorf("%s: %v, not the source tree's", rel, err)
			}
			n++
			return nil
		})
	}
	if n == 0 || !same(dir, files(t)) {
		t.Errorf("%d files compared; the directory is not exactly the embedded files", n)
	}
	if again, err := Root(cache); err != nil || again != dir {
		t.Errorf("second call: %s %v, want %s", again, err, dir)
	}
	entries, _ := os.ReadDir(filepath.Join(cache, "assets"))
	if len(entries) != 1 {
		t.Errorf("%d entries in assets/, want 1 (no temporary directories left)", len(entries))
	}
}

// TestRootRepairs writes the files again when one is changed, removed or
// added, and gives other files another directory.
func TestRootRepairs(t *testing.T) {
	fsys := fstest.MapFS{
		"configs/matrix.toml":        {Data: []byte("kernels = []\n")},
		"configs/kernel/base.config": {Data: []byte("CONFIG_FUSE_FS=y\n")},
		"patches/s/v1/0001-a.patch":  {Data: []byte("patch\n")},
	}
	cache := t.TempDir()
	dir, err := root(fsys, cache)
	if err != nil {
		t.Fatal(err)
	}
	damage := map[string]func(){
		"changed": func() { os.WriteFile(filepath.Join(dir, "configs/matrix.toml"), []byte("edited\n"), 0o644) },
		"removed": func() { os.Remove(filepath.Join(dir, "configs/kernel/base.config")) },
		"added":   func() { os.WriteFile(filepath.Join(dir, "patches/s/v1/0002-b.patch"), []byte("extra\n"), 0o644) },
	}
	for what, do := range damage {
		do()
		again, err := root(fsys, cache)
		if err != nil || again != dir {
			t.Fatalf("%s: %s %v, want %s", what, again, err, dir)
		}
		if got, _ := os.ReadFile(filepath.Join(dir, "configs/matrix.toml")); string(got) != "kernels = []\n" {
			t.Errorf("%s: matrix.toml %q after repair", what, got)
		}
		want, _, _ := read(fsys)
		if !same(dir, want) {
			t.Errorf("%s: not repaired", what)
		}
	}
	fsys["configs/matrix.toml"] = &fstest.MapFile{Data: []byte("kernels = [\"other\"]\n")}
	other, err := root(fsys, cache)
	if err != nil || other == dir {
		t.Errorf("other files: %s %v, want a directory other than %s", other, err, dir)
	}
	entries, _ := os.ReadDir(filepath.Join(cache, "assets"))
	if len(entries) != 2 {
		t.Errorf("%d entries in assets/, want 2 (no temporary directories left)", len(entries))
	}
}

// files are the embedded files.
func files(t *testing.T) map[string][]byte {
	t.Helper()
	m, _, err := read(fusevm.Files)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
