#!/bin/sh
# Benchmarks: harness boot-to-hello against a raw QEMU boot of the same
# bzImage (ratio printed), then the test daemon's throughput and restart
# latency. Uses $FUSEVM_TEST_KERNEL, else the newest cached kernel.
set -eu
cache="${FUSEVM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fusevm}"
kernel="${FUSEVM_TEST_KERNEL:-$(ls -t "$cache"/kernels/*/bzImage 2>/dev/null | head -1)}"
if [ -z "$kernel" ]; then
	echo "no kernel: run 'make vmtest' first or set FUSEVM_TEST_KERNEL" >&2
	exit 1
fi
echo "kernel: $kernel"
out=$(mktemp)
FUSEVM_TEST_KERNEL="$kernel" go test -run '^$' -bench 'BootToHello|RawQEMUBoot' -benchtime 5x ./vmtest/ | tee "$out"
awk '/BenchmarkBootToHello/ { for (i = 1; i <= NF; i++) { if ($i == "hello-ms/op") h = $(i-1); if ($i == "wall-ms/op") w = $(i-1) } }
     /BenchmarkRawQEMUBoot/ { for (i = 1; i <= NF; i++) if ($i == "wall-ms/op") r = $(i-1) }
     END { if (r > 0) printf "boot-to-hello / raw boot = %.2fx (hello %d ms, harness wall %d ms, raw wall %d ms)\n", h / r, h, w, r }' "$out"
rm -f "$out"
go test -run '^$' -bench . -benchtime 20x ./fusetestd/
