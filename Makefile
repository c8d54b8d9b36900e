# Exatom event pipeline. The two commands: `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO ?= cargo
LOCAL := deploy/local

# The test stack runs beside a `make run` stack: own state folder, own ports.
# Each can be overridden (`make integration TEST_KAFKA_PORT=29092 ...`) to run two test
# stacks side by side.
TEST_STATE ?= $(CURDIR)/.local/test
TEST_KAFKA_PORT ?= 19092
TEST_CH_HTTP_PORT ?= 18123
TEST_CH_TCP_PORT ?= 19000
TEST_PROM_PORT ?= 19090
# The cluster test's ZooKeeper and ClickHouse nodes (HTTP base+1..4, TCP base+11..14,
# replication base+21..24).
TEST_ZK_PORT ?= 12181
TEST_CLUSTER_PORT_BASE ?= 18130
TEST_ENV := STACK_STATE=$(TEST_STATE) STACK_KAFKA_PORT=$(TEST_KAFKA_PORT) \
	STACK_CH_HTTP_PORT=$(TEST_CH_HTTP_PORT) STACK_CH_TCP_PORT=$(TEST_CH_TCP_PORT) \
	STACK_PROM_PORT=$(TEST_PROM_PORT) STACK_PROM_SCRAPE_INTERVAL=1s \
	STACK_ZK_PORT=$(TEST_ZK_PORT) STACK_CLUSTER_PORT_BASE=$(TEST_CLUSTER_PORT_BASE)
GEO_DATABASE = $(shell bash -c 'source $(LOCAL)/common.sh && echo $$GEO_DATABASE')
TEST_TARGETS := STACK_TEST_STATE=$(TEST_STATE) EXATOM_KAFKA_BROKERS=127.0.0.1:$(TEST_KAFKA_PORT) \
	STACK_PROMETHEUS_URL=http://127.0.0.1:$(TEST_PROM_PORT) STACK_GEO_DATABASE=$(GEO_DATABASE) \
	EXATOM_CLICKHOUSE_URL=http://127.0.0.1:$(TEST_CH_HTTP_PORT) STACK_CH_TCP_PORT=$(TEST_CH_TCP_PORT) \
	STACK_ZK_PORT=$(TEST_ZK_PORT) STACK_CLUSTER_PORT_BASE=$(TEST_CLUSTER_PORT_BASE) \
	STACK_BIN=$(CURDIR)/target/release

.PHONY: help
help:
	@echo "make run     install what is missing, build, start the whole pipeline locally"
	@echo "make stop    stop it (data kept in .local/run)"
	@echo "make test    formatting, lints, alert rules and their tests, Kubernetes manifests, unit tests, integration tests on a real stack"
	@echo "make bench   criterion benchmarks of the hot paths"
	@echo "make bench-collector   the collector under load on one core, with its ceilings"
	@echo "make bench-chain       the whole chain under sustained load and a burst, with its ceilings"
	@echo "make bench-replay      session replay through the collector and the anonymizer, with its ceilings"
	@echo "make fuzz    fuzz the collector's body decoder for 60 s (installs cargo-fuzz if missing)"
	@echo "make test-fresh   a fresh clone with an empty cargo cache: make run, then make test, timed"
	@echo "make run CLUSTER=1   the same on a local ClickHouse cluster (ZooKeeper, 2 shards x 2 replicas)"
	@echo "make test-cluster    the cluster fault test with the full stream (3000 journeys)"

.PHONY: build
build:
	$(CARGO) build --release --workspace --bins

# CLUSTER=1: ClickHouse as a local cluster (README, "Running in production"); its state
# folder is its own (.local/run-cluster), so the two profiles never share a database.
ifeq ($(CLUSTER),1)
RUN_ENV := STACK_CLUSTER=1 STACK_STATE=$(CURDIR)/.local/run-cluster
endif

.PHONY: run
run:
	$(LOCAL)/install.sh $(if $(filter 1,$(CLUSTER)),cluster)
	$(MAKE) build
	$(RUN_ENV) $(LOCAL)/stack.sh up
	$(RUN_ENV) $(LOCAL)/services.sh up
	@$(RUN_ENV) source $(LOCAL)/common.sh; \
	echo; echo "Exatom is running (state and logs in $$STATE):"; \
	echo "  demo site       http://localhost:$$COLLECTOR_PORT/demo/   (fill in its forms, then see them in the console)"; \
	echo "  console         http://127.0.0.1:$$CONSOLE_PORT/   (user demo, password exatom-demo)"; \
	echo "  collector       http://127.0.0.1:$$COLLECTOR_PORT/v1/events   (metrics: /metrics, health: /healthz, /readyz)"; \
	echo "  anonymizer      http://127.0.0.1:$$ANONYMIZER_PORT/metrics"; \
	echo "  sessionizer     http://127.0.0.1:$$SESSIONIZER_PORT/metrics"; \
	echo "  aggregator      http://127.0.0.1:$$AGGREGATOR_PORT/metrics"; \
	if [[ $$CLUSTER == 1 ]]; then \
	echo "  ClickHouse      $$EXATOM_CLICKHOUSE_URL/ … :$$(node_http_port 4)/   (cluster $$CLUSTER_NAME: 2 shards x 2 replicas, database exatom; ZooKeeper 127.0.0.1:$$ZK_PORT)"; \
	else \
	echo "  ClickHouse      http://127.0.0.1:$$CH_HTTP_PORT/   (database exatom)"; \
	fi; \
	echo "  Prometheus      http://127.0.0.1:$$PROM_PORT/   (targets: /targets, alerts: /alerts; rules in deploy/prometheus)"; \
	echo "  Kafka (tansu)   127.0.0.1:$$KAFKA_PORT"; \
	echo "Stop with: make stop$(if $(filter 1,$(CLUSTER)), CLUSTER=1)"

.PHONY: stop
stop:
	$(RUN_ENV) $(LOCAL)/services.sh down
	$(RUN_ENV) $(LOCAL)/stack.sh down

.PHONY: status
status:
	$(RUN_ENV) $(LOCAL)/services.sh status

.PHONY: lint
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

.PHONY: unit
unit:
	$(CARGO) test --release --workspace --exclude exatom-e2e

.PHONY: integration
integration: build
	$(LOCAL)/install.sh test
	rm -rf $(TEST_STATE)
	@set -e; trap '$(TEST_ENV) $(LOCAL)/stack.sh down' EXIT; \
	$(TEST_ENV) $(LOCAL)/stack.sh up; \
	$(TEST_TARGETS) CLUSTER_JOURNEYS=$(CLUSTER_JOURNEYS) $(CARGO) test --release -p exatom-e2e $(E2E_TESTS) -- --test-threads=1
	.local/venv/bin/python tests/modern_engine.py target/release/exatom-admin

# The cluster fault test (tests/cluster.rs) with the full stream; `make test` runs it with
# 400 journeys.
.PHONY: test-cluster
test-cluster:
	$(MAKE) integration E2E_TESTS="--test cluster" CLUSTER_JOURNEYS=$${CLUSTER_JOURNEYS:-3000}

# The alert and recording rules: syntax, the rendered config, and every alert's unit tests.
.PHONY: rules
rules:
	$(LOCAL)/install.sh
	promtool check rules deploy/prometheus/rules/*.yml
	@source $(LOCAL)/common.sh && STATE=$$(mktemp -d) && render_prometheus_config $$STATE/prometheus.yml && \
	  promtool check config $$STATE/prometheus.yml && rm -rf $$STATE
	promtool test rules deploy/prometheus/tests/*.yml

# The Kubernetes manifests and the image definition, offline (deploy/k8s/validate.sh):
# kustomize renders, kubernetes-validate checks every object, and the rules of README's
# "Running in production" hold. kubectl is not a Debian package: validate.sh says how to get it.
.PHONY: manifests
manifests:
	$(LOCAL)/install.sh manifests
	deploy/k8s/validate.sh

.PHONY: test
test: lint rules manifests unit integration

# What a new machine meets: a fresh clone of HEAD, an empty CARGO_HOME, `make run` then
# `make test`, each timed (deploy/local/fresh.sh; about an hour on 2 cores).
.PHONY: test-fresh
test-fresh:
	$(LOCAL)/fresh.sh

.PHONY: bench
bench:
	$(CARGO) bench -p exatom-benches --bench pipeline --bench anonymizer

# End-to-end load of the collector on one core, with both ceilings (BENCHMARKS.md); installs
# its tools (deploy/local/install.sh bench). BENCH_STORAGE=sqlite: the broker as `make run` has it.
.PHONY: bench-collector
bench-collector:
	benches/load/collector.sh

# The whole chain on this machine: sustained rates (BENCH_RATES, BENCH_SECONDS each) and a
# burst (BENCH_BURST events), with the broker's and ClickHouse's ceilings in the same run.
.PHONY: bench-chain
bench-chain:
	benches/load/chain.sh

# Session replay: a recorded visit sent again BENCH_VISITS times, stored, with the broker's and
# ClickHouse's ceilings in the same run.
.PHONY: bench-replay
bench-replay:
	benches/load/replay.sh

# The dashboard query pack on a year of synthetic rollups, against a running ClickHouse
# ($EXATOM_CLICKHOUSE_URL, default the `make run` stack); uses its own database exatom_bench.
.PHONY: bench-queries
bench-queries: build
	services/aggregator/bench/query_pack.sh
	services/console/bench/pages.sh

# cargo-fuzz needs nightly-only rustc flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain
# accept them (nightly cannot be installed here). Bounded: FUZZ_SECONDS of fuzzing.
FUZZ_SECONDS ?= 60
.PHONY: fuzz
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	mkdir -p fuzz/corpus/body_decoder
	RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run body_decoder fuzz/corpus/body_decoder fuzz/seeds -- \
		-max_total_time=$(FUZZ_SECONDS) -dict=fuzz/body_decoder.dict -rss_limit_mb=1024
