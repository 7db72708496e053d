# canaryd's build, test and bench entry points. `make test` installs what the tests need
# (test/deps/*.sh: Debian's prometheus and etcd-server, grpcurl, a kube-apiserver built from
# the k8s.io/kubernetes module into ~/.cache/canaryd) and then runs every test with -race.

GO       ?= go
BIN      ?= bin
GOFLAGS  ?=
PKGS     ?= ./...
TEST_TIMEOUT ?= 30m

.PHONY: all build deps test test-short vet bench scale fuzz demo judge clean

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

# judge runs only the judgement matrix (part of make test too) and prints its table.
judge: deps
	$(GO) test -race -count=1 -v -run TestJudgementMatrix -timeout $(TEST_TIMEOUT) ./test/judge

# test-short runs the fast tests, which need nothing installed.
test-short:
	$(GO) test -short $(PKGS)

# bench runs every benchmark and prints one line per benchmark (ns/op, allocs and the
# custom metrics each reports). BENCH narrows it: make bench BENCH=Decide
BENCH ?= .
bench: deps
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -timeout 60m $(PKGS) | tee bench.out | \
		grep --line-buffered -E '^(Benchmark|ok|FAIL|pkg:)'

# scale runs canaryd serve with many rollouts on one tick (gitops mode; file:// and git://
# remotes; one VirtualService per file in one folder, a hundred to a folder, and all in one
# manifest), then a mass rollback in apply mode against a real API server, and prints a
# table: lateness after the tick (p50/p99/max), pushes per tick, peak RSS, CPU seconds,
# list latency during the storm and the mass rollback. SCALE_ROLLOUTS sets how many
# (default 1000), SCALE_APPLY_ROLLOUTS how many the apply-mode mass rollback runs (default
# 1000); the raw output is in scale.out.
SCALE_ROLLOUTS ?= 1000
SCALE_APPLY_ROLLOUTS ?= 1000
scale: deps
	CANARYD_SCALE_ROLLOUTS=$(SCALE_ROLLOUTS) CANARYD_SCALE_APPLY_ROLLOUTS=$(SCALE_APPLY_ROLLOUTS) $(GO) test -run '^$$' -bench 'BenchmarkScale|BenchmarkMassRollbackApply' \
		-benchtime 1x -timeout 90m ./test/serve | tee scale.out | grep --line-buffered -E '^(Benchmark|ok|FAIL)' | \
		awk '/^Benchmark/ { sub(/^Benchmark/, "", $$1); sub(/-[0-9]+$$/, "", $$1); printf "%-44s", $$1; \
			for (i = 5; i < NF; i += 2) printf "  %s %s", $$i, $$(i+1); print ""; next } { print }'

# fuzz runs each fuzzer briefly; FUZZTIME sets how long.
FUZZTIME ?= 20s
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

# demo plays the seed tutorial on this machine: greeters v1/v2, a weighted gRPC gateway on
# 127.0.0.1:8080 that follows the VirtualService in Git, Prometheus, steady traffic and
# canaryd serve in gitops mode. SCENARIO=success|fail|revert; ROUTE=grpcroute plays it on a
# Gateway API GRPCRoute; DEMO_FLAGS=--until-done exits when the scenario ends (0 when it
# ended as it should).
SCENARIO ?= success
ROUTE ?= virtualservice
DEMO_FLAGS ?=
demo: build
	@if [ ! -x /usr/bin/prometheus ] && ! command -v prometheus >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then bash test/deps/prometheus.sh; \
		else echo "make demo needs Prometheus: sudo apt-get install prometheus (Debian/Ubuntu), or put prometheus on PATH"; exit 1; fi; \
	fi
	$(BIN)/canaryd demo --scenario $(SCENARIO) --route $(ROUTE) $(DEMO_FLAGS)

clean:
	rm -rf $(BIN) bench.out
