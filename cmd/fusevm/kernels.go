package main

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/BurntSushi/toml"
)

// kernelEntry is one [[kernel]] of configs/kernels.toml; the file's header
// documents the keys.
type kernelEntry struct {
	Name    string `toml:"name"`
	Spec    string `toml:"spec"`
	Base    string `toml:"base"`
	Image   string `toml:"image"`
	Modules string `toml:"modules"`
	Online  bool   `toml:"online"`
	Note    string `toml:"note"`
}

// prebuilt reports whether the entry is a kernel image booted as it is.
func (k kernelEntry) prebuilt() bool { return k.Image != "" }

var kernelNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// loadKernels reads and checks a kernels file.
func loadKernels(path string) ([]kernelEntry, error) {
	var f struct {
		Kernels []kernelEntry `toml:"kernel"`
	}
	md, err := toml.DecodeFile(path, &f)
	if err != nil {
		return nil, usagef("kernels %s: %v", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, usagef("kernels %s: unknown key %s", path, und[0])
	}
	seen := map[string]bool{}
	for i, k := range f.Kernels {
		where := fmt.Sprintf("kernels %s: kernel #%d (%s)", path, i+1, k.Name)
		switch {
		case !kernelNameRe.MatchString(k.Name):
			return nil, usagef("%s: name must be letters, digits, '.', '_' or '-'", where)
		case seen[k.Name]:
			return nil, usagef("%s: name used twice", where)
		case (k.Spec == "") == (k.Image == ""):
			return nil, usagef("%s: needs exactly one of spec (a source to build) or image (a prebuilt kernel)", where)
		case k.Image != "" && k.Base != "":
			return nil, usagef("%s: base applies to built kernels only (an image cannot be patched)", where)
		case k.Modules != "" && (k.Image == "" || strings.HasPrefix(k.Image, "debian:")):
			return nil, usagef("%s: modules goes with an image path (debian: images bring their own)", where)
		}
		seen[k.Name] = true
	}
	if len(f.Kernels) == 0 {
		return nil, usagef("kernels %s: no [[kernel]] entries", path)
	}
	return f.Kernels, nil
}

// pickKernels returns the entries called names, in the order given;
// "all" stands for every entry.
func pickKernels(all []kernelEntry, names []string) ([]kernelEntry, error) {
	byName := map[string]kernelEntry{}
	var known []string
	for _, k := range all {
		byName[k.Name] = k
		known = append(known, k.Name)
	}
	var out []kernelEntry
	for _, n := range names {
		if n == "all" {
			out = append(out, all...)
			continue
		}
		k, ok := byName[n]
		if !ok {
			return nil, usagef("no kernel %q in the kernels file (known: %s)", n, strings.Join(known, ", "))
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, usagef("no kernel selected")
	}
	return out, nil
}
