package harness

import (
	"context"
	"fmt"

	"fusevm/execute"
	"fusevm/initramfs"
	"fusevm/kernel"
	"fusevm/plan"
	"fusevm/report"
)

// Machine is the real Stages: it resolves sources and images and builds
// kernels and guest images in a cache (package kernel, package
// initramfs), and boots them with package execute.
type Machine struct {
	Cache string
	// MakeJobs is make's -j; 0 for the CPUs + 1.
	MakeJobs int
	Log      Logger
}

// Prepare implements Stages: the source, the patches, the configuration
// and the build (cached), then the guest image; for a prebuilt kernel the
// image and the modules the guest needs from it.
func (m *Machine) Prepare(ctx context.Context, v *plan.Variant, info *report.Kernel) (*Bootable, error) {
	cache := &kernel.Cache{Root: m.Cache}
	if v.Kernel.Prebuilt() {
		return m.preparePrebuilt(ctx, cache, v, info)
	}
	// Resolve's and ResolveImage's errors name the source or image.
	tree, err := kernel.Resolve(ctx, cache, v.Kernel.Spec, m.Log)
	if err != nil {
		return nil, err
	}
	info.Identity, info.Version = tree.Identity, tree.Version
	// Build's errors name their step: a patch that does not apply, a
	// config option that did not survive, the failing source file.
	art, err := kernel.Build(ctx, cache, kernel.BuildSpec{Tree: tree, Series: v.Series, Fragments: v.Fragments, Jobs: m.MakeJobs}, m.Log)
	if err != nil {
		return nil, err
	}
	info.Key, info.Cached = art.Key, art.Cached
	if art.Cached {
		m.Log.Printf("==> kernel %s %s: cached (%s)", tree.Version, v.Label(), art.Key)
	}
	img, err := initramfs.Build(ctx, m.Cache, nil)
	if err != nil {
		return nil, fmt.Errorf("guest image: %w", err)
	}
	return &Bootable{Kernel: art.BzImage, Vmlinux: art.Vmlinux, Initramfs: img}, nil
}

// preparePrebuilt resolves a prebuilt kernel image and builds a guest
// image carrying the modules it needs that are not built in.
func (m *Machine) preparePrebuilt(ctx context.Context, cache *kernel.Cache, v *plan.Variant, info *report.Kernel) (*Bootable, error) {
	img, err := kernel.ResolveImage(ctx, cache, v.Kernel.Image, v.Kernel.Modules, m.Log)
	if err != nil {
		return nil, err
	}
	info.Identity, info.Version = img.Identity, img.Release
	mods, err := kernel.ModulesToLoad(ctx, img.ModulesDir, kernel.GuestNeeds)
	if err != nil {
		return nil, fmt.Errorf("modules of %s: %w", img.Release, err)
	}
	m.Log.Printf("==> kernel %s: prebuilt %s, %d modules to load", v.Kernel.Name, img.Release, len(mods))
	initrd, err := initramfs.Build(ctx, m.Cache, mods)
	if err != nil {
		return nil, fmt.Errorf("guest image: %w", err)
	}
	return &Bootable{Kernel: img.BzImage, Initramfs: initrd}, nil
}

// Execute implements Stages with execute.Run.
func (m *Machine) Execute(ctx context.Context, job execute.Job) (*execute.Outcome, error) {
	return execute.Run(ctx, job)
}
