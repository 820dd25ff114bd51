// Package plan turns fusevm's configuration and the command line's choices
// into variants: the kernels to build or boot, each with its config
// fragments and boot settings, its patch selection, its claims and the
// expectation of every scenario it runs.
//
// It reads configs/kernels.toml (LoadKernels), a matrix file (LoadMatrix),
// config fragments and the X.boot files beside them, and the series.toml
// catalogs (LoadCatalog), whose known issues are
// checked when the catalog loads: an unknown scenario, a verdict a known
// issue cannot have, an unknown config fragment or a patch the version
// does not have is an error naming file:line.
//
// Expectations are decided here and nowhere else: Variant.Settle fills a
// result's expected verdict, known issue and reason, for single runs and
// merged repeats alike. Every error of this package is the user's to fix
// (the command line reports it as a usage error).
package plan
