# canaryd's build, test and bench entry points. `make test` installs what the tests need
# (test/deps/*.sh: Debian's prometheus and etcd-server, grpcurl, a kube-apiserver built from
# the k8s.io/kubernetes module into ~/.cache/canaryd) and then runs every test with -race.

GO       ?= go
BIN      ?= bin
GOFLAGS  ?=
PKGS     ?= ./...
TEST_TIMEOUT ?= 30m

.PHONY: all build deps test test-short vet bench fuzz demo clean

all: build

build:
	$(GO) build -o $(BIN)/canaryd ./cmd/canaryd
	@if [ -d cmd/greeter ]; then $(GO) build -o $(BIN)/greeter ./cmd/greeter; fi

# deps installs every test dependency; each script is idempotent and quick when done.
deps:
	@set -e; for s in test/deps/*.sh; do echo "== $$s"; bash "$$s"; done

vet:
	$(GO) vet $(PKGS)

# test runs everything: unit tests, and the tests that start real servers.
test: deps vet
	$(GO) test -race -timeout $(TEST_TIMEOUT) $(PKGS)

# test-short runs the fast tests, which need nothing installed.
test-short:
	$(GO) test -short $(PKGS)

# bench runs every benchmark and prints one line per benchmark (ns/op, allocs and the
# custom metrics each reports). BENCH narrows it: make bench BENCH=Decide
BENCH ?= .
bench: deps
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -timeout 60m $(PKGS) | tee bench.out | \
		grep -E '^(Benchmark|ok|FAIL|pkg:)'

# fuzz runs each fuzzer briefly; FUZZTIME sets how long.
FUZZTIME ?= 20s
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

# demo: the full sandbox (greeters, gateway, Prometheus, canaryd serve) arrives with the
# sandbox issue. Until then it builds canaryd and validates the example spec, and says so.
demo: build
	@echo "canaryd demo: the local sandbox (greeter v1/v2, weighted gateway, Prometheus, canaryd serve)"
	@echo "is not built yet. What works today: the spec, the decision core and the store."
	$(BIN)/canaryd validate deploy/examples/rollout.yaml

clean:
	rm -rf $(BIN) bench.out
