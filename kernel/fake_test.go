package kernel

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeMakefile imitates the few kernel make targets fusevm uses: tinyconfig
// writes a fixed .config, olddefconfig drops every option not listed in
// Kconfig.known (as real Kconfig drops options whose dependencies fail),
// and bzImage "compiles" src.c into bzImage and vmlinux (failing like gcc when it holds #error).
// Builds and configurations are counted in the workspace root's "builds"
// and "configures" files.
const fakeMakefile = `VERSION = 7
PATCHLEVEL = 3
SUBLEVEL = 0
O ?= .
tinyconfig:
	@mkdir -p $(O) && printf 'CONFIG_64BIT=y\n# CONFIG_PRINTK is not set\n' > $(O)/.config
	@echo x >> $(O)/../../configures
olddefconfig:
	@grep -E "^CONFIG_($$(paste -sd'|' Kconfig.known))=" $(O)/.config > $(O)/.config.new || true
	@mv $(O)/.config.new $(O)/.config
bzImage:
	@echo "  CC      src.o"
	@if grep -n '#error' src.c >/dev/null; then echo "src.c:$$(grep -n '#error' src.c | cut -d: -f1):1: error: boom"; exit 1; fi
	@mkdir -p $(O)/arch/x86/boot && cat src.c > $(O)/arch/x86/boot/bzImage
	@cat src.c > $(O)/vmlinux
	@echo x >> $(O)/../../builds
`

// fakeTree writes a fake kernel tree and returns its directory.
func fakeTree(t *testing.T, known ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "linux")
	files := map[string]string{
		"Makefile":         fakeMakefile,
		"arch/x86/Kconfig": "config X86\n",
		"Kconfig.known":    strings.Join(append([]string{"64BIT"}, known...), "\n") + "\n",
		"src.c":            "int main(void) { return 0; }\n",
		"fs/fuse/dev.c":    "line 1\nline 2\nline 3\nline 4\nline 5\nline 6\nline 7\nline 8\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func writeFile(t *testing.T, path, body string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
