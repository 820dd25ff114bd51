package plan

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Kernel is one [[kernel]] of a kernels file (configs/kernels.toml, whose
// header documents the keys), or a kernel given on the command line.
type Kernel struct {
	// Name is what reports call the kernel.
	Name string `toml:"name"`
	// Spec is a kernel source to build (kernel.Resolve).
	Spec string `toml:"spec"`
	// Base names the base of the patch series that applies to it.
	Base string `toml:"base"`
	// Image is a prebuilt kernel booted as it is (kernel.ResolveImage).
	Image string `toml:"image"`
	// Modules is the lib/modules/<release> directory of an image path.
	Modules string `toml:"modules"`
	Online  bool   `toml:"online"`
	Note    string `toml:"note"`
}

// Prebuilt reports whether the kernel is an image booted as it is.
func (k Kernel) Prebuilt() bool { return k.Image != "" }

var kernelNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// LoadKernels reads and checks a kernels file.
func LoadKernels(path string) ([]Kernel, error) {
	var file struct {
		Kernels []Kernel `toml:"kernel"`
	}
	f, err := decodeFile(path, &file)
	if err != nil {
		return nil, fmt.Errorf("kernels file: %w", err)
	}
	seen := map[string]bool{}
	for i, k := range file.Kernels {
		line := f.table("kernel", i)
		bad := func(key, format string, a ...any) error {
			return f.errorf(f.assignment(line, key), "kernel %q: %s", k.Name, fmt.Sprintf(format, a...))
		}
		switch {
		case !kernelNameRe.MatchString(k.Name):
			return nil, bad("name", "name must be letters, digits, '.', '_' or '-'")
		case seen[k.Name]:
			return nil, bad("name", "name used twice")
		case (k.Spec == "") == (k.Image == ""):
			return nil, bad("spec", "needs exactly one of spec (a source to build) or image (a prebuilt kernel)")
		case k.Image != "" && k.Base != "":
			return nil, bad("base", "base applies to built kernels only (an image cannot be patched)")
		case k.Modules != "" && (k.Image == "" || strings.HasPrefix(k.Image, "debian:")):
			return nil, bad("modules", "modules goes with an image path (debian: images bring their own)")
		}
		seen[k.Name] = true
	}
	if len(file.Kernels) == 0 {
		return nil, f.errorf(0, "no [[kernel]] entries")
	}
	return file.Kernels, nil
}

// PickKernels returns the kernels called names, in the order given; "all"
// stands for every kernel.
func PickKernels(all []Kernel, names []string) ([]Kernel, error) {
	byName := map[string]Kernel{}
	var known []string
	for _, k := range all {
		byName[k.Name] = k
		known = append(known, k.Name)
	}
	var out []Kernel
	for _, n := range names {
		if n == "all" {
			out = append(out, all...)
			continue
		}
		k, ok := byName[n]
		if !ok {
			return nil, fmt.Errorf("no kernel %q in the kernels file (known: %s)", n, strings.Join(known, ", "))
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no kernel selected")
	}
	return out, nil
}

// ConfigFile is where the matrix or kernels file the command line names
// by path is: path itself when it is absolute or exists relative to the
// working directory, else path under root (the fusevm source tree, whose
// configs/ are built in).
func ConfigFile(root, path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	if _, err := os.Stat(path); err == nil {
		return path
	}
	return filepath.Join(root, path)
}

// KernelChoice is the kernel of one variant as the command line names it.
type KernelChoice struct {
	// Spec is a kernel source (kernel.Resolve; it has a ':') or the name
	// of a kernel in KernelsFile.
	Spec string
	// Image, if set, is a prebuilt kernel to boot instead
	// (kernel.ResolveImage), with its Modules directory if any.
	Image, Modules string
	// KernelsFile is the kernels file, read only for a name.
	KernelsFile string
}

// Kernel is the chosen kernel: the prebuilt Image, a source Spec, or the
// kernel Spec names in the kernels file.
func (c KernelChoice) Kernel() (Kernel, error) {
	if c.Image != "" {
		return Kernel{Name: c.Image, Image: c.Image, Modules: c.Modules}, nil
	}
	if strings.Contains(c.Spec, ":") {
		return Kernel{Name: c.Spec, Spec: c.Spec}, nil
	}
	all, err := LoadKernels(c.KernelsFile)
	if err != nil {
		return Kernel{}, err
	}
	ks, err := PickKernels(all, []string{c.Spec})
	if err != nil {
		return Kernel{}, err
	}
	return ks[0], nil
}
