# fusevm: the two commands a newcomer needs are `make vmtest` and `make test`.
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go

.PHONY: all deps build test unit vmtest vmtest-all vmtest-debug bench clean

all: build

deps:
	@./scripts/install-deps.sh

# Static (CGO_ENABLED=0): the binary is also the guest's /init and daemon.
build: deps
	CGO_ENABLED=0 $(GO) build -o bin/fusevm ./cmd/fusevm

# Unit tests, host daemon tests and one end-to-end VM test on the default kernel.
test: deps
	$(GO) test -count=1 -timeout 70m ./...

# Unit tests only (no kernel build, no VM).
unit:
	$(GO) test -count=1 -short ./...

# The main job: the default matrix (configs/matrix.toml), every scenario.
# KERNEL=name[,name...] picks kernels from configs/kernels.toml instead;
# OUT=dir sets the results directory (default results/<time>).
KERNEL ?=
OUT ?=
VMTEST_FLAGS = $(if $(KERNEL),--kernel $(KERNEL)) $(if $(OUT),--out $(OUT))
vmtest: build
	./bin/fusevm matrix $(VMTEST_FLAGS)

# Every kernel this machine can run: the three Debian sources, each with the
# whole series, and Debian's prebuilt 7.3 image (baseline only).
vmtest-all: build
	./bin/fusevm matrix --kernel debian-7.3,debian-7.2,debian-6.12,debian-7.3-image $(if $(OUT),--out $(OUT))

bench: build
	./scripts/bench.sh

clean:
	rm -rf bin results

# The default matrix under the base config and the debug config (KASAN,
# lockdep): slow under TCG, it shows the known v2 close-all race.
vmtest-debug: build
	./bin/fusevm matrix --configs base,base+debug $(VMTEST_FLAGS)
