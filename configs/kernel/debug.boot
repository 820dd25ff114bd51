# Boot settings for kernels built with debug.config (one "key: value" a line).
#
# slub_debug=FZPU: 7.3 parks kfree_rcu objects in per-CPU sheaves and frees
# them late; with SLUB debugging a use-after-free of a fuse_backing is seen.
# kasan_multi_shot: report every KASAN error, not only the first.
cmdline: slub_debug=FZPU kasan_multi_shot
# One vCPU: races then run by preemption, which is what exposes v2's
# idr_for_each walk (with two vCPUs, 20 s of racing did not; with one, KASAN
# reported the use-after-free within the first race).
cpus: 1
# The races run their full length: KASAN needs time to catch v2's walk
# (BENCHMARKS.md, "Race lengths").
race: 20s
# KASAN's quarantine keeps freed objects in the slab (up to 1/32 of the
# guest's memory): kernel-memory checks allow that much more.
slab-slack: 32M
