package plan

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// RunArgs are the `fusevm run` flags that build and test this variant
// again from its source (its scenarios left out): the kernel spec or
// image, the config set, the series (a file of the built-in
// configuration named relative to the fusevm tree, as `fusevm run` takes
// it), the patch selection, claims that do not come from a series.toml,
// and the variant's name.
func (v *Variant) RunArgs() []string {
	var a []string
	if v.Kernel.Prebuilt() {
		a = append(a, "--kernel-image", v.Kernel.Image)
		if v.Kernel.Modules != "" {
			a = append(a, "--modules", v.Kernel.Modules)
		}
	} else {
		a = append(a, "--kernel", v.Kernel.Spec)
		if v.Config != "" && v.Config != "base" {
			a = append(a, "--config", v.Config)
		}
	}
	s := v.spec
	if s.Series != "" {
		a = append(a, "--series", v.relative(s.Series))
		if s.Picks != nil {
			var ps []string
			for _, p := range s.Picks {
				ps = append(ps, fmt.Sprint(p))
			}
			a = append(a, "--patches", strings.Join(ps, ","))
		}
	}
	if (s.Claims != nil || s.PatchClaims != nil || (s.Series != "" && v.Version == "")) && len(v.Claims) > 0 {
		a = append(a, "--claims", strings.Join(v.Claims, ","))
	}
	def := "baseline"
	if s.Series != "" {
		def = v.Version
		if def == "" {
			def = filepath.Base(strings.TrimSuffix(s.Series, "/"))
		}
		if s.Picks != nil {
			def += strings.ReplaceAll(fmt.Sprint(s.Picks), " ", ",")
		}
	}
	if v.Name != def {
		a = append(a, "--name", v.Name)
	}
	return a
}

// relative names path relative to the fusevm tree root when it is inside
// it (fusevm resolves such a path against the built-in configuration when
// it does not exist in the working directory), else as it is.
func (v *Variant) relative(path string) string {
	if v.root == "" || filepath.IsAbs(v.root) != filepath.IsAbs(path) {
		return path
	}
	rel, err := filepath.Rel(v.root, path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") || slices.Contains([]string{".", ""}, rel) {
		return path
	}
	return rel
}

// SeriesPath is the patch series as given (relative to the fusevm tree
// when it is one of the built-in ones); "" for the baseline.
func (v *Variant) SeriesPath() string {
	if v.spec.Series == "" {
		return ""
	}
	return v.relative(v.spec.Series)
}
