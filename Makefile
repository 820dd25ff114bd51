# fusevm: the two commands a newcomer needs are `make vmtest` and `make test`.
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go

.PHONY: all deps build test unit vmtest vmtest-debug bench clean

all: build

deps:
	@./scripts/install-deps.sh

build: deps
	$(GO) build -o bin/fusevm ./cmd/fusevm

# Unit tests, host daemon tests and one end-to-end VM test on the default kernel.
test: deps
	$(GO) test -count=1 -timeout 70m ./...

# Unit tests only (no kernel build, no VM).
unit:
	$(GO) test -count=1 -short ./...

# The main job: the default kernel, every scenario.
vmtest: build
	./bin/fusevm matrix

bench: build
	./scripts/bench.sh

clean:
	rm -rf bin results

# The default matrix under the base config and the debug config (KASAN,
# lockdep): slow under TCG, it shows the known v2 close-all race.
vmtest-debug: build
	./bin/fusevm matrix --configs base,base+debug
