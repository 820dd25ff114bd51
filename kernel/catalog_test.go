package kernel

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestRealCatalog loads the project's own series.toml: every entry's
// patches exist and parse, and claims accumulate over a prefix.
func TestRealCatalog(t *testing.T) {
	path := filepath.Join("..", "patches", "fuse-passthrough-recovery", "series.toml")
	c, err := LoadCatalog(path)
	if err != nil {
		t.Fatal(err)
	}
	e, ok := c.Entry("7.3", "v2")
	if !ok {
		t.Fatal("no 7.3 v2 entry")
	}
	if got := e.Claims([]int{1}); !reflect.DeepEqual(got, []string{"close_all_ioctl"}) {
		t.Errorf("v2[:1] claims %v", got)
	}
	if got := e.Claims(nil); !reflect.DeepEqual(got, []string{"close_all_ioctl", "same_inode_reuse"}) {
		t.Errorf("v2 claims %v", got)
	}
	if got := e.Claims([]int{2}); !reflect.DeepEqual(got, []string{"same_inode_reuse"}) {
		t.Errorf("v2[2] claims %v", got)
	}
	dir := filepath.Join(c.Dir, e.Dir)
	if found, ok := c.Lookup(dir); !ok || found != e {
		t.Errorf("Lookup(%s) failed", dir)
	}
	if FindCatalog(dir) == "" {
		t.Errorf("FindCatalog(%s) found nothing", dir)
	}
}

func TestCatalogRejectsMismatch(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "7.3/v9/0001-first.patch"), patchA)
	writeFile(t, filepath.Join(dir, "series.toml"), `name = "x"
[[version]]
name = "v9"
[[series]]
base = "7.3"
version = "v9"
dir = "7.3/v9"
  [[series.patch]]
  file = "0001-other.patch"
  claims = ["a"]
`)
	_, err := LoadCatalog(filepath.Join(dir, "series.toml"))
	if err == nil || !strings.Contains(err.Error(), "0001-other.patch") {
		t.Errorf("got %v", err)
	}
}
