package kernel

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestSeriesAppliesToItsBase fetches every base of the project's series
// (Debian's linux-source-X.Y, cached after the first run) and checks that
// each version applies cleanly, patch by patch, to a copy of the files it
// touches. The VM tests boot them.
func TestSeriesAppliesToItsBase(t *testing.T) {
	if testing.Short() {
		t.Skip("fetches kernel sources; skipped in -short mode")
	}
	if os.Getuid() != 0 {
		t.Skip("the debian provider runs apt-get download as root")
	}
	cat, err := LoadCatalog(filepath.Join("..", "patches", "fuse-passthrough-recovery", "series.toml"))
	if err != nil {
		t.Fatal(err)
	}
	c := &Cache{Root: DefaultCacheDir()}
	trees := map[string]*Tree{}
	for _, e := range cat.Entries {
		if e.Base == "6.19" {
			// No 6.19 source is served offline: the CI jobs of the
			// 6.19 kernels (configs/kernels.toml) apply and build it.
			t.Logf("%s %s: no 6.19 source here, left to the online CI jobs", e.Base, e.Version)
			continue
		}
		tree := trees[e.Base]
		if tree == nil {
			if tree, err = Resolve(context.Background(), c, "debian:"+e.Base, NopLogger{}); err != nil {
				t.Fatalf("base %s: %v", e.Base, err)
			}
			trees[e.Base] = tree
		}
		series, err := LoadSeries(filepath.Join(cat.Dir, e.Dir))
		if err != nil {
			t.Fatal(err)
		}
		work := t.TempDir()
		for _, p := range series.Patches {
			for _, f := range p.Files {
				if data, err := os.ReadFile(filepath.Join(tree.Dir, f)); err == nil {
					writeFile(t, filepath.Join(work, f), string(data))
				}
			}
		}
		if _, err := Apply(context.Background(), work, filepath.Join(t.TempDir(), "git"), series); err != nil {
			t.Errorf("%s %s on %s: %v", e.Base, e.Version, tree.Identity, err)
		}
	}
}
