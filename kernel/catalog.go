package kernel

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/BurntSushi/toml"
)

// Catalog is a series.toml: the versions of one patch series, the
// behaviours each patch claims, and known issues. Its format is documented
// in the header of patches/fuse-passthrough-recovery/series.toml.
type Catalog struct {
	Name     string         `toml:"name"`
	Title    string         `toml:"title"`
	Versions []VersionInfo  `toml:"version"`
	Entries  []CatalogEntry `toml:"series"`
	// Dir is the directory holding series.toml.
	Dir string `toml:"-"`
}

// VersionInfo describes one posted version of the series.
type VersionInfo struct {
	Name        string       `toml:"name"`
	RFC         bool         `toml:"rfc"`
	Summary     string       `toml:"summary"`
	KnownIssues []KnownIssue `toml:"known_issue"`
}

// KnownIssue is an expected non-PASS verdict of one scenario under one
// config set and patch selection, with its reason. It is decoded here and
// checked and matched by package plan.
type KnownIssue struct {
	Scenario string `toml:"scenario"`
	Config   string `toml:"config"`
	// Patches are the patch numbers (1-based) that must be applied,
	// exactly; nil stands for all the patches of the version.
	Patches []int  `toml:"patches"`
	Verdict string `toml:"verdict"`
	Reason  string `toml:"reason"`
}

// CatalogEntry is one version ported to one kernel base.
type CatalogEntry struct {
	Base                string         `toml:"base"`
	Version             string         `toml:"version"`
	Dir                 string         `toml:"dir"`
	InodeCacheFlagValue uint32         `toml:"inode_cache_flag_value"`
	Patches             []CatalogPatch `toml:"patch"`
}

// CatalogPatch is one patch file and the behaviours it claims.
type CatalogPatch struct {
	File   string   `toml:"file"`
	Claims []string `toml:"claims"`
}

// LoadCatalog reads and checks a series.toml: every entry's version is
// declared, and its directory holds exactly the listed patches.
func LoadCatalog(path string) (*Catalog, error) {
	var c Catalog
	md, err := toml.DecodeFile(path, &c)
	if err != nil {
		return nil, fmt.Errorf("series catalog %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("series catalog %s: unknown key %s", path, und[0])
	}
	c.Dir = filepath.Dir(path)
	versions := map[string]bool{}
	for _, v := range c.Versions {
		versions[v.Name] = true
	}
	for _, e := range c.Entries {
		if !versions[e.Version] {
			return nil, fmt.Errorf("series catalog %s: base %s names undeclared version %q", path, e.Base, e.Version)
		}
		s, err := LoadSeries(filepath.Join(c.Dir, e.Dir))
		if err != nil {
			return nil, fmt.Errorf("series catalog %s: %w", path, err)
		}
		if len(s.Patches) != len(e.Patches) {
			return nil, fmt.Errorf("series catalog %s: %s lists %d patches, its directory holds %d", path, e.Dir, len(e.Patches), len(s.Patches))
		}
		for i, p := range e.Patches {
			if s.Patches[i].Name != p.File {
				return nil, fmt.Errorf("series catalog %s: %s patch %d is %s, the directory's is %s", path, e.Dir, i+1, p.File, s.Patches[i].Name)
			}
		}
	}
	return &c, nil
}

// FindCatalog looks for series.toml in the parents of a series directory
// (at most three levels up); "" if there is none.
func FindCatalog(seriesPath string) string {
	abs, err := filepath.Abs(seriesPath)
	if err != nil {
		return ""
	}
	d := abs
	for i := 0; i < 3; i++ {
		d = filepath.Dir(d)
		if _, err := os.Stat(filepath.Join(d, "series.toml")); err == nil {
			return filepath.Join(d, "series.toml")
		}
	}
	return ""
}

// Lookup finds the entry whose directory is seriesDir.
func (c *Catalog) Lookup(seriesDir string) (*CatalogEntry, bool) {
	abs, _ := filepath.Abs(seriesDir)
	for i := range c.Entries {
		e := &c.Entries[i]
		if p, _ := filepath.Abs(filepath.Join(c.Dir, e.Dir)); p == abs {
			return e, true
		}
	}
	return nil, false
}

// Entry finds a (base, version) entry.
func (c *Catalog) Entry(base, version string) (*CatalogEntry, bool) {
	for i := range c.Entries {
		if c.Entries[i].Base == base && c.Entries[i].Version == version {
			return &c.Entries[i], true
		}
	}
	return nil, false
}

// Version returns the version's description.
func (c *Catalog) Version(name string) VersionInfo {
	for _, v := range c.Versions {
		if v.Name == name {
			return v
		}
	}
	return VersionInfo{Name: name}
}

// Claims is the union of the claims of the selected patches (1-based; nil
// selects all), sorted.
func (e *CatalogEntry) Claims(picks []int) []string {
	if picks == nil {
		for i := range e.Patches {
			picks = append(picks, i+1)
		}
	}
	seen := map[string]bool{}
	var out []string
	for _, n := range picks {
		if n < 1 || n > len(e.Patches) {
			continue
		}
		for _, c := range e.Patches[n-1].Claims {
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	sort.Strings(out)
	return out
}
