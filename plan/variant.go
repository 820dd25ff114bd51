package plan

import (
	"fmt"
	"math/bits"
	"path/filepath"
	"strings"

	"fusevm/kernel"
	"fusevm/scenarios"
)

// Spec is a variant as the command line or a matrix names it.
type Spec struct {
	Kernel Kernel
	// Config is the config set: fragments joined by "+" ("base",
	// "base+debug"). A prebuilt kernel has none.
	Config string
	// Series is the path of a patch series; "" for the baseline.
	Series string
	// Picks are the patches to apply (1-based); nil applies them all.
	Picks []int
	// Name names the variant in reports; "" derives it from the series.
	Name string
	// Claims are the behaviours the series claims; nil takes them from
	// PatchClaims, else from the series.toml catalog the series is listed
	// in.
	Claims []string
	// PatchClaims are claims given on the command line per patch of the
	// series (1-based), as a series.toml gives them; key 0 holds claims of
	// the whole version, which only a selection that ends with its last
	// patch makes (see VersionClaims). Prefix keeps them.
	PatchClaims map[int][]string
}

// Variant is one kernel to boot: a source with a config and a patch
// selection, or a prebuilt image; with the expectation of each scenario.
type Variant struct {
	Kernel Kernel
	// Config is the normalized config set; "" for a prebuilt kernel.
	Config string
	// Fragments are the config fragment paths; nil for a prebuilt kernel.
	Fragments []string
	// Boot are the boot settings of the fragments' .boot files, or those
	// of a prebuilt kernel.
	Boot Boot
	// Name names the variant in reports: "baseline", "v2", "v2[2]"...
	Name string
	// Series holds the patches to apply, nil for the baseline.
	Series *kernel.Series
	Claims []string
	// Params are per-kernel settings for the scenario scripts.
	Params map[string]string
	// Version is the series version of the catalog entry the series is
	// listed in; "" when it is in no series.toml.
	Version string

	// expect holds the expectation of each scenario the variant runs.
	expect map[string]Expectation
	// root, spec and scen remake the variant with other patches (Prefix).
	root string
	spec Spec
	scen []scenarios.Scenario
}

// NewVariant makes the variant of s, which runs the scenarios ss. root is
// the fusevm source tree (configs/kernel/ holds the fragments named by
// config sets). A series listed in a series.toml (found in the three
// directories above it) takes its claims, known issues and parameters from
// there.
func NewVariant(root string, s Spec, ss []scenarios.Scenario) (*Variant, error) {
	return newVariant(root, s, ss, nil)
}

// newVariant is NewVariant with the catalog already loaded (nil: look for
// the one above the series).
func newVariant(root string, s Spec, ss []scenarios.Scenario, cat *Catalog) (*Variant, error) {
	v := &Variant{Kernel: s.Kernel, Name: s.Name, Claims: s.Claims, root: root, spec: s, scen: ss}
	if s.Series == "" && s.Picks != nil {
		return nil, fmt.Errorf("a patch selection (%v) needs a series", s.Picks)
	}
	var err error
	if s.Kernel.Prebuilt() {
		if s.Series != "" {
			return nil, fmt.Errorf("kernel %s is prebuilt: it cannot take a patch series", s.Kernel.Name)
		}
		// One vCPU: a distribution kernel patches its own text at run
		// time (static keys, e.g. when the clocksource switches to the
		// TSC), and under multi-threaded TCG another vCPU can still
		// execute the int3 of a patch that has just completed: Debian's
		// 7.3 image oopsed so in ktime_get_update_offsets_now in about
		// one boot in 17 with two vCPUs. fusevm's own minimal kernels
		// have no jump labels and keep two.
		v.Boot = Boot{CPUs: 1}
	} else {
		v.Config = normalizeConfig(s.Config)
		if v.Fragments, err = fragments(root, v.Config); err != nil {
			return nil, err
		}
		if v.Boot, err = readBoot(v.Fragments); err != nil {
			return nil, err
		}
	}
	var known map[string]knownIssue
	if s.Series != "" {
		if v.Series, err = kernel.LoadSeries(s.Series); err != nil {
			return nil, err
		}
		if v.Claims == nil && s.PatchClaims != nil {
			v.Claims = claimsOf(s.PatchClaims, s.Picks, len(v.Series.Patches))
		}
		if s.Picks != nil {
			if v.Series, err = v.Series.Select(s.Picks); err != nil {
				return nil, err
			}
		}
		if cat == nil {
			if path := kernel.FindCatalog(s.Series); path != "" {
				if cat, err = LoadCatalog(path, root); err != nil {
					return nil, err
				}
			}
		}
		if cat != nil {
			if e, ok := cat.Lookup(s.Series); ok {
				v.Version = e.Version
				known = cat.knownIssues(e, v.Config, s.Picks)
				if e.InodeCacheFlagValue != 0 {
					v.param("inode_cache_bit", fmt.Sprint(bits.TrailingZeros32(e.InodeCacheFlagValue)))
				}
				if v.Claims == nil {
					v.Claims = e.Claims(s.Picks)
				}
			}
		}
	}
	if v.Name == "" {
		switch {
		case s.Series == "":
			v.Name = "baseline"
		case v.Version != "":
			v.Name = v.Version
		default:
			v.Name = filepath.Base(strings.TrimSuffix(s.Series, "/"))
		}
		if s.Picks != nil {
			v.Name += strings.ReplaceAll(fmt.Sprint(s.Picks), " ", ",")
		}
	}
	if v.Boot.Race > 0 {
		v.param("race", v.Boot.Race.String())
	}
	if v.Boot.SlabSlack > 0 {
		v.param("slab_slack", fmt.Sprint(v.Boot.SlabSlack))
	}
	v.expect = expectations(ss, v.Claims, known)
	return v, nil
}

// param sets a parameter of the scenario scripts (Params).
func (v *Variant) param(key, value string) {
	if v.Params == nil {
		v.Params = map[string]string{}
	}
	v.Params[key] = value
}

// Prefix is the variant of the same series with only its first k patches
// applied, named and claiming as that selection does in the catalog.
func (v *Variant) Prefix(k int) (*Variant, error) {
	s := v.spec
	s.Name, s.Claims, s.Picks = "", nil, make([]int, k)
	for i := range s.Picks {
		s.Picks[i] = i + 1
	}
	return NewVariant(v.root, s, v.scen)
}

// WithPatch is the variant with one more patch applied on top of its
// series, named name, keeping its claims, known issues and expectations:
// a mutant of the series (fusevm mutate) must give what the series gives.
func (v *Variant) WithPatch(p kernel.Patch, name string) *Variant {
	w := *v
	w.Name = name
	s := &kernel.Series{Source: p.Name}
	if v.Series != nil {
		s.Source = v.Series.Source + " + " + p.Name
		s.Patches = append(s.Patches, v.Series.Patches...)
	}
	s.Patches = append(s.Patches, p)
	w.Series = s
	return &w
}

// Label is the variant's column in reports: its name, and its config set
// when that is not the base one.
func (v *Variant) Label() string {
	if v.Config == "base" || v.Config == "" {
		return v.Name
	}
	return v.Name + " (" + v.Config + ")"
}

// Dir is a directory name, safe in any file system, for the variant's
// console logs.
func (v *Variant) Dir() string {
	return strings.NewReplacer(":", "-", "/", "-", " ", "", "[", "-", "]", "", ",", "-", "+", "-").Replace(v.Kernel.Name + "_" + v.Name + "_" + v.Config)
}
