package plan

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"fusevm/scenarios"
)

// VersionClaims are claims given on the command line (`fusevm bisect
// series --claims`) for series versions outside every series.toml: per
// version (as named on the command line, or its base name; "" for the one
// version outside the catalog), the claims of each patch (1-based), with
// key 0 for claims of the whole version.
type VersionClaims map[string]map[int][]string

// ParseVersionClaims parses --claims values: "VERSION=LIST" (claims of the
// whole version, made by its last patch), "VERSION:N=LIST" (claims of its
// patch N; claims add up over the patches applied), or a bare "LIST" for
// the one version that is in no series.toml. LIST is comma-separated and
// may be empty (the version claims nothing).
func ParseVersionClaims(values []string) (VersionClaims, error) {
	vc := VersionClaims{}
	for _, val := range values {
		name, list, named := strings.Cut(val, "=")
		if !named {
			name, list = "", val
		}
		patch := 0
		if n, num, ok := strings.Cut(name, ":"); ok && name != "" {
			p, err := strconv.Atoi(num)
			if err != nil || p < 1 {
				return nil, fmt.Errorf("--claims %q: want VERSION:N=CLAIMS with N a patch number from 1", val)
			}
			name, patch = n, p
		}
		if named && name == "" {
			return nil, fmt.Errorf("--claims %q: no version before =", val)
		}
		if vc[name] == nil {
			vc[name] = map[int][]string{}
		}
		claims := vc[name][patch]
		if claims == nil {
			claims = []string{}
		}
		for _, c := range strings.Split(list, ",") {
			if c = strings.TrimSpace(c); c != "" && !slices.Contains(claims, c) {
				claims = append(claims, c)
			}
		}
		vc[name][patch] = claims
	}
	return vc, nil
}

// claimsOf is the union of the claims of the patches picks selects (all n
// when picks is nil), with the whole version's (key 0) when the selection
// ends with the last patch.
func claimsOf(pc map[int][]string, picks []int, n int) []string {
	if picks == nil {
		for i := 1; i <= n; i++ {
			picks = append(picks, i)
		}
	}
	out := []string{}
	add := func(cs []string) {
		for _, c := range cs {
			if !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	for _, p := range picks {
		add(pc[p])
	}
	if len(picks) > 0 && picks[len(picks)-1] == n {
		add(pc[0])
	}
	return out
}

// SeriesVersions makes the variants of a series bisection: one per path,
// in order, on kernel k with the config set config. A version listed in a
// series.toml takes its claims from there unless vc names it; one outside
// every series.toml takes them from vc (by its path as given, its base
// name with or without its extension, or the unnamed entry when it is the
// only such version), and is an error without.
func SeriesVersions(root string, k Kernel, config string, paths []string, vc VersionClaims, ss []scenarios.Scenario) ([]*Variant, error) {
	keys := func(path string) []string {
		p := strings.TrimSuffix(path, "/")
		base := filepath.Base(p)
		return []string{path, p, base, strings.TrimSuffix(base, filepath.Ext(base))}
	}
	for name := range vc {
		found := name == ""
		for _, path := range paths {
			found = found || slices.Contains(keys(path), name)
		}
		if !found {
			return nil, fmt.Errorf("--claims %s=...: no version %s among %s", name, name, strings.Join(paths, " "))
		}
	}
	var out []*Variant
	var outside []string
	used := map[string]bool{}
	for _, path := range paths {
		s := Spec{Kernel: k, Config: config, Series: path}
		v, err := NewVariant(root, s, ss)
		if err != nil {
			return nil, err
		}
		name := ""
		for _, key := range keys(path) {
			if _, ok := vc[key]; ok && key != "" {
				name = key
				break
			}
		}
		if name == "" && v.Version == "" {
			outside = append(outside, path)
			if _, ok := vc[""]; ok {
				name = "\x00" // the unnamed entry, checked below
			}
		}
		switch {
		case name == "\x00":
			s.PatchClaims = vc[""]
			used[""] = true
		case name != "":
			s.PatchClaims = vc[name]
			used[name] = true
		case v.Version == "":
			return nil, fmt.Errorf("version %s is in no series.toml, so its claims are unknown: give them with --claims %s=CLAIM,... (or list it in a series.toml beside the series)", path, filepath.Base(strings.TrimSuffix(path, "/")))
		}
		if s.PatchClaims != nil {
			if v, err = NewVariant(root, s, ss); err != nil {
				return nil, err
			}
			for p := range s.PatchClaims {
				if p > len(v.Series.Patches) {
					return nil, fmt.Errorf("--claims for %s: patch %d: the series has %d patches", path, p, len(v.Series.Patches))
				}
			}
		}
		out = append(out, v)
	}
	if used[""] && len(outside) > 1 {
		return nil, fmt.Errorf("--claims without a version name, but %d versions are in no series.toml (%s): name each, as --claims VERSION=CLAIMS", len(outside), strings.Join(outside, ", "))
	}
	if _, ok := vc[""]; ok && !used[""] {
		return nil, fmt.Errorf("--claims without a version name, but every version is in a series.toml")
	}
	return out, nil
}
