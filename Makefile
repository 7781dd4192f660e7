# aimwan — see README.md. `make demo` runs the experiment on an embedded default;
# `make test` is what CI runs.
GO        ?= go
BIN       := bin/aimwan
# Stamped into the binary (internal/version): `aimwan --version` and the
# aimwan_build_info metric show them, with or without -buildvcs.
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
REVISION  ?= $(shell git rev-parse HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)
LDFLAGS   := -X github.com/aimwan/aimwan/internal/version.stamped=$(VERSION) -X github.com/aimwan/aimwan/internal/version.stampedRevision=$(REVISION)
# Packages with concurrency run under the race detector in `make test`; so does
# the end-to-end suite, whose daemons it then builds with -race (and fails a
# test whose daemon logs a data race).
RACE_PKGS := ./journal/... ./transport/... ./nbd/... ./aimsrc/... ./aimdst/... ./dedupe/... ./proxy/... ./sim/... ./reports/...

.PHONY: build test demo bench lint fmt-check vet nocgo clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/aimwan

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# Without cgo there is no libzstd: dedupe's level max is refused and the
# proxy's adaptive rule stops at best. Check that such a build still works.
nocgo:
	CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/aimwan
	CGO_ENABLED=0 $(GO) test -count=1 -run 'TestLevelMax|TestChooseLevel|TestCodec' ./dedupe/ ./proxy/

lint: fmt-check vet
	$(GO) test -count=1 ./internal/archtest/

test: fmt-check vet nocgo
	$(GO) test -count=1 -timeout 20m $$($(GO) list ./... | grep -v /e2e)
	$(GO) test -count=1 -race -timeout 20m $(RACE_PKGS) ./e2e/

demo: build
	./$(BIN) bench --out out/demo

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 3x ./journal/ ./nbd/ ./aimsrc/ ./dedupe/ ./proxy/
	./$(BIN) bench --out out/bench --scale small

clean:
	rm -rf bin out
