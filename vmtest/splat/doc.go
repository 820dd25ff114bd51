// Package splat finds kernel splats in a serial console log: KASAN and
// KFENCE reports, UBSAN, WARNINGs, Oopses and general protection faults,
// kernel BUGs, lockdep reports, RCU stalls, lockups, hung tasks and panics.
// Each becomes a Report with a one-line title in syzkaller's style ("KASAN:
// slab-use-after-free Read in idr_for_each", "WARNING in fuse_file_io_open",
// "INFO: task hung in request_wait_answer") and the text of the splat.
//
// The guest agent brackets each scenario with lines written to /dev/kmsg:
//
//	fusevm: scenario <name> start
//	fusevm: scenario <name> end
//
// and ScanByScenario uses them to attribute each splat to the scenario that
// was running when it was printed.
package splat
