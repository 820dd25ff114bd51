// Package fusevm carries the configuration fusevm is built with: configs/
// (kernel config fragments, configs/kernels.toml, configs/matrix.toml) and
// patches/ (the patch series and their catalogs) of the source tree,
// embedded in every binary that imports it. It holds nothing else: the
// embedding has to sit here, in the directory above configs/ and patches/,
// because embed patterns cannot name a parent directory. Package
// fusevm/assets puts these files on disk for the commands.
package fusevm

import "embed"

// Files holds configs/ and patches/ as they were when the binary was built.
//
//go:embed configs patches
var Files embed.FS
