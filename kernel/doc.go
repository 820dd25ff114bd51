// Package kernel turns a kernel source specification, a patch series and
// config fragments into a bootable bzImage, caching every expensive step.
//
// The stages are: Resolve a source (Debian linux-source package, local
// directory, git revision or tarball) into a read-only extracted tree in a
// content-addressed cache; load a patch Series (directory, series file or
// mbox); Build, which copies the tree into a per-source workspace, applies
// the series there (never in the cached tree), merges the config fragments
// onto tinyconfig, validates that every requested option survived, runs an
// out-of-tree ccache build and publishes the bzImage atomically under a key
// of every input. The package knows nothing of QEMU.
package kernel
