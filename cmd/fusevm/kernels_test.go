package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestShippedKernelsAndMatrix loads configs/kernels.toml and expands the
// shipped matrix for a built kernel, an online one and a prebuilt one.
func TestShippedKernelsAndMatrix(t *testing.T) {
	root := filepath.Join("..", "..")
	sel := matrixSel{kernelsFile: filepath.Join(root, "configs", "kernels.toml")}
	matrix := filepath.Join(root, "configs", "matrix.toml")
	for _, c := range []struct {
		kernels []string
		want    []string // variant labels
		series  string   // series base directory of the patched variants
	}{
		{nil, []string{"baseline", "v1", "v2", "v3", "v2-patch2-only"}, "7.3"},
		{[]string{"v6.19-rc4"}, []string{"baseline", "v1", "v2", "v3", "v2-patch2-only"}, "7.2"},
		{[]string{"debian-7.3-image"}, []string{"baseline"}, ""},
	} {
		sel.kernels = c.kernels
		vs, _, err := loadMatrix(matrix, root, sel)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, v := range vs {
			got = append(got, v.label())
			if v.series != "" && filepath.Base(filepath.Dir(v.series)) != c.series {
				t.Errorf("%v: %s uses %s, want base %s", c.kernels, v.name, v.series, c.series)
			}
			if v.kernel.prebuilt() && (v.config != "" || v.series != "") {
				t.Errorf("prebuilt variant has config %q series %q", v.config, v.series)
			}
		}
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("%v: variants %v, want %v", c.kernels, got, c.want)
		}
	}
	sel.kernels = []string{"debian-7.3", "nosuch"}
	if _, _, err := loadMatrix(matrix, root, sel); err == nil || !strings.Contains(err.Error(), `no kernel "nosuch"`) || !strings.Contains(err.Error(), "debian-7.2") {
		t.Errorf("unknown kernel: %v (want the error to list the known names)", err)
	}
}

func TestKernelsFileErrors(t *testing.T) {
	for body, want := range map[string]string{
		"[[kernel]]\nname = \"a\"\n":                                                                         "needs exactly one of spec",
		"[[kernel]]\nname = \"a\"\nspec = \"debian:7.3\"\nimage = \"x\"\n":                                   "needs exactly one of spec",
		"[[kernel]]\nname = \"a b\"\nspec = \"debian:7.3\"\n":                                                "name must be",
		"[[kernel]]\nname = \"a\"\nspec = \"debian:7.3\"\n[[kernel]]\nname = \"a\"\nspec = \"debian:7.2\"\n": "name used twice",
		"[[kernel]]\nname = \"a\"\nimage = \"vmlinuz\"\nbase = \"7.3\"\n":                                    "base applies to built kernels only",
		"[[kernel]]\nname = \"a\"\nimage = \"debian:linux-image-amd64\"\nmodules = \"m\"\n":                  "modules goes with an image path",
		"[[kernel]]\nname = \"a\"\nspec = \"debian:7.3\"\nflavour = \"x\"\n":                                 "unknown key kernel.flavour",
		"":                                     "no [[kernel]] entries",
		"[[kernel]]\nname = \"a\"\nspec = 7\n": "incompatible types",
	} {
		p := filepath.Join(t.TempDir(), "kernels.toml")
		os.WriteFile(p, []byte(body), 0o644)
		if _, err := loadKernels(p); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", body, err, want)
		}
	}
}

// TestKernelFlagErrors checks the kernel selection flags fail before any
// work with one line and the usage exit code.
func TestKernelFlagErrors(t *testing.T) {
	cache := t.TempDir()
	junk := filepath.Join(t.TempDir(), "vmlinuz")
	os.WriteFile(junk, []byte("not a kernel"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--kernel", "nosuch"}, `no kernel "nosuch"`},
		{[]string{"run", "--modules", "/lib/modules/x"}, "--modules goes with --kernel-image"},
		{[]string{"run", "--kernel-image", junk, "--kernel", "debian:7.3"}, "not both"},
		{[]string{"run", "--kernel-image", junk, "--config", "base+debug"}, "--config does not apply"},
		{[]string{"run", "--kernel-image", junk, "--series", "patches/fuse-passthrough-recovery/7.3/v2"}, "cannot take a patch series"},
		{[]string{"run", "--kernel-image", junk}, "not an x86 bzImage"},
		{[]string{"run", "--kernel-image", "debian:linux-headers-amd64"}, "want a linux-image-*"},
		{[]string{"matrix", "--kernel", "debian-7.3,nosuch"}, `no kernel "nosuch"`},
	} {
		args := append(c.args, "--cache", cache, "--out", t.TempDir())
		code, _, stderr := fusevm(t, args...)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d (stderr %q)", c.args, code, exitUsage, stderr)
		}
		if errs := errorLines(stderr); len(errs) != 1 || !strings.Contains(errs[0], c.want) {
			t.Errorf("%v: stderr %q: want one line containing %q", c.args, stderr, c.want)
		}
	}
}
