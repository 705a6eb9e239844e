# Benchmarks (issue 7), included from the Makefile. How to read the results:
# docs/benchmarks.md. The load harness is cmd/stellwerk-bench (internal/bench);
# it starts and stops its own Envoys, stellwerk and fake provider on random
# loopback ports.
#
#   make bench BENCH_FLAGS='--rates 100,500,1000,2000 --duration 10s'
#   make bench BENCH_FLAGS='--target http://127.0.0.1:8080 --model gpt-4o-mini'
#   make bench BENCH_FLAGS='--floor pipelined'   # a floor answering every message stellwerk answers
#   make bench BENCH_FLAGS='--floor pipelined --floor-transport frames'   # its answers as HTTP/2 frames, no grpc-go
#   make bench BENCH_FLAGS='--floor pipelined --floor-transport inline'   # the same, answered by the connection's reader
#   make bench BENCH_FLAGS='--tenants 200x20'         # 200 workspaces of 20 keys each, the load spread over the 4,000 keys
#   make soak SOAK=30m SOAK_FLAGS='--rate 500'
#   make soak SOAK_FLAGS='--tenants 200x20'            # is memory flat with many tenants?
#   make profile PROFILE_FLAGS='--size 32KB --stream'
#   make profile PROFILE_FLAGS='--trace 3s'           # also an execution trace: who waited to run, and why
#   make profile PROFILE_FLAGS='--tenants 200x20'     # what the tenants' state holds: inuse_space of bin/profile/allocs-start.pprof
#   bin/stellwerk-bench trace --requests 1500 bin/profile/trace.out   # that trace summarised again

GO          ?= go
BIN         ?= bin/stellwerk
BENCH_BIN   := bin/stellwerk-bench
SOAK        ?= 20m
BENCH_FLAGS ?=
SOAK_FLAGS  ?=
PROFILE_FLAGS ?=

.PHONY: bench-bin
bench-bin:
	$(GO) build -o $(BENCH_BIN) ./cmd/stellwerk-bench

.PHONY: bench
bench: tools build bench-bin ## micro-benchmarks, stellwerk's added latency over plain Envoy and the floor, then how long Envoy waits in each ext_proc phase (docs/benchmarks.md)
	$(GO) test -run '^$$' -bench . -benchmem ./internal/... ./extproc/ ./xds/ ./rego/
	STELLWERK_BIN=$(CURDIR)/$(BIN) $(BENCH_BIN) run --json bin/benchmarks.json $(BENCH_FLAGS)
	$(BENCH_BIN) profile --phases --rate 100 --duration 10s --out bin/phases

.PHONY: soak
soak: tools build bench-bin ## steady load on Envoy + stellwerk for SOAK (default 20m, past the ledger's 6 min lease): do memory and fds stay flat?
	STELLWERK_BIN=$(CURDIR)/$(BIN) $(BENCH_BIN) soak --duration $(SOAK) --json bin/soak.json $(SOAK_FLAGS)

.PHONY: profile
profile: tools bench-bin ## CPU and allocation profiles of stellwerk under load (bin/profile/)
	$(BENCH_BIN) profile --out bin/profile $(PROFILE_FLAGS)
	$(GO) tool pprof -top -nodecount=25 bin/profile/cpu.pprof
	$(GO) tool pprof -top -nodecount=25 -sample_index=alloc_space -base bin/profile/allocs-start.pprof bin/profile/allocs.pprof
