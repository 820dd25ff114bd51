package plan

import (
	"fmt"
	"path/filepath"

	"fusevm/scenarios"
)

// Plan is what a run does: every variant runs every scenario.
type Plan struct {
	Variants  []*Variant
	Scenarios []scenarios.Scenario
}

// matrixFile is a matrix file (configs/matrix.toml; its header documents
// the keys).
type matrixFile struct {
	Series    string   `toml:"series"`
	Scenarios []string `toml:"scenarios"`
	Configs   []string `toml:"configs"`
	Kernels   []string `toml:"kernels"`
	Variants  []struct {
		Name    string `toml:"name"`
		Version string `toml:"version"`
		Patches []int  `toml:"patches"`
	} `toml:"variant"`
}

// Selection overrides parts of a matrix file; empty fields keep the
// file's choice.
type Selection struct {
	// KernelsFile is the kernels file the matrix's kernel names refer to.
	KernelsFile string
	Kernels     []string
	Configs     []string
	Scenarios   []string
}

// LoadMatrix reads a matrix file and expands it into a plan: kernels x
// configs x variants, in that order. The series path in it is relative to
// root. A prebuilt kernel runs only the variants without a version, once
// (it has no config to vary).
func LoadMatrix(path, root string, sel Selection) (*Plan, error) {
	var m matrixFile
	f, err := decodeFile(path, &m)
	if err != nil {
		return nil, fmt.Errorf("matrix: %w", err)
	}
	configs := firstSet(sel.Configs, m.Configs, []string{"base"})
	names := firstSet(sel.Kernels, m.Kernels)
	if len(names) == 0 || len(m.Variants) == 0 {
		return nil, f.errorf(0, "needs kernels (or --kernel) and at least one [[variant]]")
	}
	all, err := LoadKernels(sel.KernelsFile)
	if err != nil {
		return nil, err
	}
	kernels, err := PickKernels(all, names)
	if err != nil {
		return nil, err
	}
	ss, err := scenarios.Load(firstSet(sel.Scenarios, m.Scenarios, []string{"all"}))
	if err != nil {
		return nil, err
	}
	var cat *Catalog
	if m.Series != "" {
		if cat, err = LoadCatalog(filepath.Join(root, m.Series), root); err != nil {
			return nil, err
		}
	}
	p := &Plan{Scenarios: ss}
	for _, k := range kernels {
		cfgs := configs
		if k.Prebuilt() {
			cfgs = []string{""}
		}
		for _, cfg := range cfgs {
			for i, mv := range m.Variants {
				line := f.table("variant", i)
				s := Spec{Kernel: k, Config: cfg, Picks: mv.Patches, Name: mv.Name}
				if mv.Version != "" {
					if k.Prebuilt() {
						continue
					}
					if cat == nil {
						return nil, f.errorf(f.assignment(line, "version"), "variant %s names a version but no series catalog is set", mv.Name)
					}
					e, ok := cat.Entry(k.Base, mv.Version)
					if !ok {
						return nil, f.errorf(f.assignment(line, "version"), "the series has no version %s for base %q (kernel %s)", mv.Version, k.Base, k.Name)
					}
					s.Series = filepath.Join(cat.Dir, e.Dir)
				}
				v, err := newVariant(root, s, ss, cat)
				if err != nil {
					return nil, f.errorf(line, "variant %s on %s: %v", mv.Name, k.Name, err)
				}
				p.Variants = append(p.Variants, v)
			}
		}
	}
	if len(p.Variants) == 0 {
		return nil, f.errorf(0, "no variant runs on the selected kernels (a prebuilt kernel runs only variants without a version)")
	}
	return p, nil
}

// firstSet returns the first non-empty list.
func firstSet(lists ...[]string) []string {
	for _, l := range lists {
		if len(l) > 0 {
			return l
		}
	}
	return nil
}
