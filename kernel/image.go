package kernel

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"fusevm/internal/lazyre"
)

// Image is a prebuilt kernel, booted as it is: nothing is configured,
// patched or compiled.
type Image struct {
	// Spec is the image specification the user gave.
	Spec string `json:"spec"`
	// BzImage is the kernel file QEMU boots.
	BzImage string `json:"bzimage"`
	// Release is the kernel release the image reports, e.g. "7.3.4+deb13-amd64".
	Release string `json:"release"`
	// Identity is the exact provenance (packages and versions, or the
	// file's digest), recorded in results.
	Identity string `json:"identity"`
	// ModulesDir is the image's lib/modules/<release> directory, "" when
	// none is known (then everything the guest needs must be built in).
	ModulesDir string `json:"modules_dir,omitempty"`
}

// ResolveImage turns an image specification into an Image. Specifications:
//
//	PATH                        a bzImage (vmlinuz) file; modules, if
//	                            given, is its lib/modules/<release> directory
//	debian:PACKAGE[=VERSION]    a Debian kernel package, e.g.
//	                            linux-image-7.3.4+deb13-amd64, fetched with
//	                            the private apt of the debian: sources, with
//	                            the linux-image/binary/modules/base packages
//	                            it depends on; modules must then be empty
func ResolveImage(ctx context.Context, c *Cache, spec, modules string, log Logger) (*Image, error) {
	if rest, ok := strings.CutPrefix(spec, "debian:"); ok {
		if modules != "" {
			return nil, fmt.Errorf("%w: image %s brings its own modules: drop --modules", ErrBadSpec, spec)
		}
		return resolveDebianImage(ctx, c, rest, log)
	}
	release, err := bzImageRelease(spec)
	if err != nil {
		return nil, err
	}
	sum, err := HashFile(spec)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(spec)
	if err != nil {
		return nil, err
	}
	img := &Image{Spec: spec, BzImage: abs, Release: release, Identity: fmt.Sprintf("image %s %s (sha256:%s)", filepath.Base(spec), release, sum)}
	if modules != "" {
		if img.ModulesDir, err = filepath.Abs(modules); err != nil {
			return nil, err
		}
		if st, err := os.Stat(img.ModulesDir); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("%w: modules %s: not a directory", ErrBadSpec, modules)
		}
		if filepath.Base(img.ModulesDir) != release {
			return nil, fmt.Errorf("%w: modules %s are not for release %s (want a .../lib/modules/%s directory)", ErrBadSpec, modules, release, release)
		}
	}
	return img, nil
}

// bzImageRelease checks that path is an x86 bzImage and reads the kernel
// release from its setup header (the first word of the version string the
// header's kernel_version field points at).
func bzImageRelease(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("%w: image %s: %v", ErrBadSpec, path, err)
	}
	defer f.Close()
	hdr := make([]byte, 0x210)
	if _, err := f.ReadAt(hdr, 0); err != nil || string(hdr[0x202:0x206]) != "HdrS" {
		return "", fmt.Errorf("%w: image %s is not an x86 bzImage (no HdrS setup header)", ErrBadSpec, path)
	}
	off := int64(binary.LittleEndian.Uint16(hdr[0x20e:])) + 0x200
	buf := make([]byte, 256)
	n, _ := f.ReadAt(buf, off)
	release, _, _ := strings.Cut(string(buf[:n]), " ")
	if release == "" || strings.ContainsRune(release, 0) {
		return "", fmt.Errorf("%w: image %s has no kernel version string", ErrBadSpec, path)
	}
	return release, nil
}

// debianKernelPackageRe matches the packages a Debian kernel is split into;
// dependencies outside it (initramfs tools, apparmor) are not followed.
var debianKernelPackageRe = lazyre.New(`^linux-(image|binary|modules|base)-`)

// resolveDebianImage fetches a Debian kernel package and the kernel
// packages it depends on, and extracts them once into src/img-<digest>.
func resolveDebianImage(ctx context.Context, c *Cache, arg string, log Logger) (*Image, error) {
	pkg, pin, _ := strings.Cut(arg, "=")
	if !debianKernelPackageRe().MatchString(pkg) {
		return nil, fmt.Errorf("%w: image debian:%s: want a linux-image-*, linux-binary-* or linux-modules-* package", ErrBadSpec, arg)
	}
	var debs []debFile
	err := withApt(ctx, c, func(a *privateApt) (err error) {
		debs, err = a.fetchClosure(ctx, pkg, pin, log)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("image debian:%s: %w", arg, err)
	}
	h := sha256.New()
	var names []string
	for _, d := range debs {
		sum, err := HashFile(d.path)
		if err != nil {
			return nil, err
		}
		fmt.Fprintln(h, sum)
		names = append(names, d.pkg+" "+d.version)
	}
	id := imageIDPrefix + hex.EncodeToString(h.Sum(nil))[:16]
	if err := ensureChecked(ctx, c, id, log, "extract "+pkg, func(dst string) error {
		return extractDebianImage(ctx, debs, dst)
	}); err != nil {
		return nil, fmt.Errorf("image debian:%s: %w", arg, err)
	}
	root := c.Path("src", id, "linux")
	vmlinuz, modDir, err := findDebianKernel(root)
	if err != nil {
		return nil, fmt.Errorf("image debian:%s: %w", arg, err)
	}
	release, err := bzImageRelease(vmlinuz)
	if err != nil {
		return nil, fmt.Errorf("image debian:%s: %w", arg, err)
	}
	if modDir != "" && filepath.Base(modDir) != release {
		return nil, fmt.Errorf("image debian:%s: modules are for %s, the image is %s", arg, filepath.Base(modDir), release)
	}
	if modDir != "" {
		if err := ensureModulesDep(ctx, modDir); err != nil {
			return nil, fmt.Errorf("image debian:%s: %w", arg, err)
		}
	}
	return &Image{Spec: "debian:" + arg, BzImage: vmlinuz, Release: release, ModulesDir: modDir,
		Identity: "debian " + strings.Join(names, ", ")}, nil
}

// imageIDPrefix begins the src/ entries of unpacked prebuilt kernels.
const imageIDPrefix = "img-"

// ensureChecked is ensureExtracted for trees that carry digests: it
// records the digests of what extract wrote and checks them on every use;
// a damaged copy is removed, with a note through log, and unpacked again.
func ensureChecked(ctx context.Context, c *Cache, id string, log Logger, what string, extract func(dst string) error) error {
	withDigests := func(dst string) error {
		if err := extract(dst); err != nil {
			return err
		}
		return writeDigests(dst)
	}
	if err := ensureExtracted(ctx, c, id, log, what, withDigests); err != nil {
		return err
	}
	entry := c.Path("src", id)
	if checkDigests(filepath.Join(entry, "linux")) == nil {
		markUsed(entry)
		return nil
	}
	unlock, err := c.Lock(ctx, "src-"+id)
	if err != nil {
		return err
	}
	if err = checkDigests(filepath.Join(entry, "linux")); err != nil {
		err = dropDamaged(entry, err, log, "image "+id, "unpacking again")
	}
	unlock()
	if err != nil {
		return err
	}
	return ensureExtracted(ctx, c, id, log, what, withDigests)
}

// debFile is a downloaded Debian package.
type debFile struct{ pkg, version, path string }

// fetchClosure downloads pkg and, transitively, the kernel packages its
// Depends name (at the exact versions it pins), in a stable order.
func (a *privateApt) fetchClosure(ctx context.Context, pkg, pin string, log Logger) ([]debFile, error) {
	var out []debFile
	seen := map[string]bool{}
	queue := []struct{ pkg, pin string }{{pkg, pin}}
	for len(queue) > 0 {
		q := queue[0]
		queue = queue[1:]
		if seen[q.pkg] {
			continue
		}
		seen[q.pkg] = true
		path, version, err := a.fetch(ctx, q.pkg, q.pin, log)
		if err != nil {
			return nil, err
		}
		out = append(out, debFile{q.pkg, version, path})
		deps, err := exec.CommandContext(ctx, "dpkg-deb", "-f", path, "Depends").Output()
		if err != nil {
			return nil, fmt.Errorf("read Depends of %s: %w", filepath.Base(path), err)
		}
		for _, d := range kernelDepends(string(deps)) {
			queue = append(queue, struct{ pkg, pin string }{d[0], d[1]})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].pkg < out[j].pkg })
	return out, nil
}

// kernelDepends picks, from a Depends field, the kernel packages (first
// alternative of each group only) and the exact version each pins, if any.
func kernelDepends(field string) [][2]string {
	var out [][2]string
	for _, group := range strings.Split(field, ",") {
		alt, _, _ := strings.Cut(group, "|")
		alt = strings.TrimSpace(alt)
		name, rest, _ := strings.Cut(alt, " ")
		if !debianKernelPackageRe().MatchString(name) {
			continue
		}
		pin := ""
		if v, ok := strings.CutPrefix(strings.TrimSpace(rest), "(="); ok {
			pin = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), ")"))
		}
		out = append(out, [2]string{name, pin})
	}
	return out
}

// extractDebianImage unpacks the packages' files into dst.
func extractDebianImage(ctx context.Context, debs []debFile, dst string) error {
	for _, d := range debs {
		if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", d.path, dst).CombinedOutput(); err != nil {
			return fmt.Errorf("unpack %s: %s", filepath.Base(d.path), lastLine(out))
		}
	}
	return nil
}

// findDebianKernel locates the kernel and its modules directory in an
// unpacked package tree: usr/lib/modules/<release>/vmlinuz (newer
// packages) or boot/vmlinuz-<release> (older ones).
func findDebianKernel(root string) (vmlinuz, modDir string, err error) {
	for _, lib := range []string{"usr/lib/modules", "lib/modules"} {
		dirs, _ := filepath.Glob(filepath.Join(root, lib, "*"))
		for _, d := range dirs {
			if _, err := os.Stat(filepath.Join(d, "vmlinuz")); err == nil {
				return filepath.Join(d, "vmlinuz"), d, nil
			}
		}
		for _, d := range dirs {
			rel := filepath.Base(d)
			if _, err := os.Stat(filepath.Join(root, "boot", "vmlinuz-"+rel)); err == nil {
				return filepath.Join(root, "boot", "vmlinuz-"+rel), d, nil
			}
		}
	}
	boots, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if len(boots) == 1 {
		return boots[0], "", nil
	}
	return "", "", errors.New("the packages hold no kernel image (no usr/lib/modules/*/vmlinuz nor boot/vmlinuz-*)")
}

// ensureModulesDep writes modules.dep into modDir, a lib/modules/<release>
// directory, when it is missing. Debian's kernel packages leave it out
// (their postinst runs depmod on the installed system), so an unpacked
// package gets it the same way, from depmod (kmod). depmod reads
// <base>/lib/modules/<release> (or usr/lib/modules, as built), so it runs
// on a scratch base whose entries lead to modDir.
func ensureModulesDep(ctx context.Context, modDir string) error {
	if _, err := os.Stat(filepath.Join(modDir, "modules.dep")); err == nil {
		return nil
	}
	tool, err := exec.LookPath("depmod")
	for _, p := range []string{"/usr/sbin/depmod", "/sbin/depmod"} {
		if err != nil {
			tool, err = exec.LookPath(p)
		}
	}
	if err != nil {
		return fmt.Errorf("modules %s have no modules.dep, and depmod (package kmod), which writes it, is not installed", modDir)
	}
	base, err := os.MkdirTemp("", "fusevm-depmod-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(base)
	release := filepath.Base(modDir)
	for _, lib := range []string{"lib/modules", "usr/lib/modules"} {
		if err := os.MkdirAll(filepath.Join(base, lib), 0o755); err != nil {
			return err
		}
		if err := os.Symlink(modDir, filepath.Join(base, lib, release)); err != nil {
			return err
		}
	}
	if out, err := exec.CommandContext(ctx, tool, "-b", base, release).CombinedOutput(); err != nil {
		return fmt.Errorf("depmod %s: %v: %s", release, err, lastLine(out))
	}
	return nil
}

// GuestModule is a kernel feature the guest needs.
type GuestModule struct {
	// Name is the module's name ("fuse", "virtio_console").
	Name string
	// Need says why; it names the feature in errors.
	Need string
	// Optional modules are loaded when the kernel has them as modules and
	// skipped otherwise.
	Optional bool
}

// GuestNeeds lists what the fusevm guest uses, in load order.
var GuestNeeds = []GuestModule{
	{Name: "virtio_pci", Need: "the virtio PCI transport (events port)"},
	{Name: "virtio_console", Need: "the virtio console (events port)"},
	{Name: "fuse", Need: "FUSE (/dev/fuse, fusectl)"},
	{Name: "pvpanic_pci", Need: "pvpanic (fast panic reports)", Optional: true},
}

// ModulesToLoad returns the module files (host paths, each before the
// modules that depend on it) the guest must load for needs, given an
// image's modules directory, from the lists the kernel's build writes
// there: modules.dep (depmod's, required) and modules.builtin. A need
// built in costs nothing. A required need that is neither built in nor a
// module fails with its name. Without a modules directory nothing can be
// checked and the list is empty.
func ModulesToLoad(_ context.Context, modDir string, needs []GuestModule) ([]string, error) {
	if modDir == "" {
		return nil, nil
	}
	builtin := map[string]bool{}
	data, err := os.ReadFile(filepath.Join(modDir, "modules.builtin"))
	haveBuiltin := err == nil
	for _, line := range strings.Split(string(data), "\n") {
		if line != "" {
			builtin[moduleName(line)] = true
		}
	}
	mods, err := readModulesDep(modDir)
	if err != nil {
		return nil, err
	}
	var order []string
	placed := map[string]bool{}
	var place func(name string, chain []string) error
	place = func(name string, chain []string) error {
		if placed[name] || builtin[name] {
			return nil
		}
		if len(chain) > 32 {
			return fmt.Errorf("module dependency loop: %s", strings.Join(chain, " -> "))
		}
		m, ok := mods[name]
		if !ok {
			return fmt.Errorf("module %s (needed by %s) is not in %s", name, strings.Join(chain, " -> "), modDir)
		}
		for _, dep := range m.deps {
			if err := place(dep, append(chain, name)); err != nil {
				return err
			}
		}
		path := filepath.Join(modDir, m.path)
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("module %s is listed in %s/modules.dep but its file is missing: %w", name, modDir, err)
		}
		placed[name] = true
		order = append(order, path)
		return nil
	}
	for _, n := range needs {
		if builtin[n.Name] {
			continue
		}
		if _, ok := mods[n.Name]; !ok {
			if n.Optional || !haveBuiltin {
				continue // absent, or built in without a modules.builtin to say so
			}
			return nil, fmt.Errorf("kernel %s lacks %s: %s is neither built in nor a module", filepath.Base(modDir), n.Need, n.Name)
		}
		if err := place(n.Name, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// moduleDep is a module as modules.dep lists it: its file, relative to the
// modules directory, and the names of the modules it needs.
type moduleDep struct {
	path string
	deps []string
}

// readModulesDep reads modDir's modules.dep, keyed by module name. Each
// line is "kernel/a.ko.xz: kernel/b.ko.xz kernel/c.ko.xz": a module and
// every module it needs, directly or not.
func readModulesDep(modDir string) (map[string]moduleDep, error) {
	file := filepath.Join(modDir, "modules.dep")
	data, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("modules %s have no modules.dep: run depmod for release %s (depmod -b BASE %[2]s, for BASE/lib/modules/%[2]s)", modDir, filepath.Base(modDir))
	}
	if err != nil {
		return nil, err
	}
	mods := map[string]moduleDep{}
	for i, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		path, deps, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("%s:%d: no colon in %q", file, i+1, line)
		}
		m := moduleDep{path: strings.TrimSpace(path)}
		for _, d := range strings.Fields(deps) {
			m.deps = append(m.deps, moduleName(d))
		}
		mods[moduleName(m.path)] = m
	}
	return mods, nil
}

// moduleName normalises a module path or name: "kernel/fs/fuse/fuse.ko",
// "pvpanic-pci.ko.xz" and "pvpanic-pci" name "fuse" and "pvpanic_pci".
func moduleName(s string) string {
	s = filepath.Base(s)
	if i := strings.Index(s, ".ko"); i >= 0 {
		s = s[:i]
	}
	return strings.ReplaceAll(s, "-", "_")
}

// ReadModule returns a kernel module file's bytes, decompressed (.ko.xz,
// .ko.zst and .ko.gz through xz, zstd and gzip).
func ReadModule(ctx context.Context, path string) ([]byte, error) {
	var tool []string
	switch {
	case strings.HasSuffix(path, ".ko"):
		return os.ReadFile(path)
	case strings.HasSuffix(path, ".ko.xz"):
		tool = []string{"xz", "-dc"}
	case strings.HasSuffix(path, ".ko.zst"):
		tool = []string{"zstd", "-dcq"}
	case strings.HasSuffix(path, ".ko.gz"):
		tool = []string{"gzip", "-dc"}
	default:
		return nil, fmt.Errorf("module %s: unknown compression", path)
	}
	cmd := exec.CommandContext(ctx, tool[0], append(tool[1:], path)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("decompress %s: %v %s", filepath.Base(path), err, lastLine(stderr.Bytes()))
	}
	return out, nil
}
