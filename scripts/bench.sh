#!/bin/sh
# Benchmarks: harness boot-to-hello against a raw QEMU boot of the same
# bzImage (ratio printed), the warm default matrix, then the test daemon's
# throughput and restart latency. The kernel is the default base kernel
# (the baseline of debian-7.3 under the base config, built if needed), or
# $FUSEVM_TEST_KERNEL.
set -eu
cache="${FUSEVM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fusevm}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
kernel="${FUSEVM_TEST_KERNEL:-}"
if [ -z "$kernel" ]; then
	./bin/fusevm run --kernel debian-7.3 --scenarios smoke-passthrough --out "$tmp/base" >"$tmp/base.log" 2>&1 || {
		cat "$tmp/base.log" >&2
		echo "bench: the default base kernel did not build or boot" >&2
		exit 1
	}
	key=$(sed -n 's/.*"build_key": *"\([^"]*\)".*/\1/p' "$tmp/base/results.json" | head -1)
	kernel="$cache/kernels/$key/bzImage"
fi
echo "kernel: $kernel"
FUSEVM_TEST_KERNEL="$kernel" go test -run '^$' -bench 'BootToHello|RawQEMUBoot' -benchtime 8x ./vmtest/ | tee "$tmp/boot"
awk '/BenchmarkBootToHello/ { for (i = 1; i <= NF; i++) { if ($i == "hello-ms/op") h = $(i-1); if ($i == "wall-ms/op") w = $(i-1) } }
     /BenchmarkRawQEMUBoot\/plain/ { for (i = 1; i <= NF; i++) if ($i == "wall-ms/op") r = $(i-1) }
     /BenchmarkRawQEMUBoot\/harness-cmdline/ { for (i = 1; i <= NF; i++) if ($i == "wall-ms/op") c = $(i-1) }
     END { if (r > 0 && c > 0) printf "boot-to-hello / raw boot = %.2fx (hello %d ms, harness wall %d ms, raw wall %d ms); with the harness kernel parameters %.2fx (raw wall %d ms)\n", h / r, h, w, r, h / c, c }' "$tmp/boot"
# The default matrix, once to build what is missing, then timed warm.
./bin/fusevm matrix --out "$tmp/warmup" >"$tmp/warmup.log" 2>&1 || true
start=$(date +%s)
code=0
./bin/fusevm matrix --out "$tmp/matrix" >"$tmp/matrix.log" 2>&1 || code=$?
echo "warm default matrix: $(( $(date +%s) - start )) s (exit $code)"
go test -run '^$' -bench . -benchtime 20x ./fusetestd/
