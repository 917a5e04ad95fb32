# ringmaster — build, test, benchmark, lint, regenerate protobuf code.
GO            ?= go
GOBIN         := $(shell $(GO) env GOPATH)/bin
MODULE        := github.com/ringmaster-ml/ringmaster
# Code generators, pinned so that `make proto` reproduces the committed files.
PROTOC_GEN_GO      := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.0
STATICCHECK        := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Packages with goroutines and shared state (the model and kernels own worker
# pools): always tested under the race
# detector (-short: the long numerical runs already ran without it).
RACE_PKGS     := ./pkg/allreduce/... ./pkg/coord/... ./pkg/train/... ./pkg/parallel/... ./pkg/model ./pkg/model/kernels/...

.PHONY: all build test test-openblas bench lint proto clean images compose-test

all: build

build:
	$(GO) build -o bin/ ./cmd/...

test:
	$(GO) vet ./...
	$(GO) test -count=1 ./...
	$(GO) test -count=1 -race -short $$($(GO) list $(RACE_PKGS) 2>/dev/null)
	@if echo '#include <cblas.h>' | $(CC) -E -x c - >/dev/null 2>&1; then $(MAKE) --no-print-directory test-openblas; \
	else echo "make test: no cblas.h (apt-get install libopenblas-dev): skipping the OpenBLAS backend's tests"; fi

# The optional OpenBLAS backend (-tags openblas, cgo) against the same
# references. OpenBLAS picks its kernel when it loads; one that does not
# know the CPU falls back to SSE3, which kernels.New refuses, so name one.
OPENBLAS_CORETYPE ?= $(shell grep -qw avx512f /proc/cpuinfo 2>/dev/null && echo SkylakeX || (grep -qw avx2 /proc/cpuinfo 2>/dev/null && echo Haswell))
test-openblas:
	OPENBLAS_CORETYPE=$(OPENBLAS_CORETYPE) $(GO) test -count=1 -tags openblas ./pkg/model/kernels/...

# Each fuzz target for FUZZTIME (CI: a few seconds each; seeds also run in
# `make test`). A finding is written under the package's testdata/fuzz.
FUZZTIME ?= 10s
FUZZ_TARGETS := FuzzParse:./pkg/jobspec FuzzParseHeader:./pkg/allreduce FuzzFSMApply:./pkg/coord \
	FuzzDecodeHeader:./pkg/ckpt FuzzDecode:./pkg/model/safetensors FuzzParseVocab:./pkg/data FuzzRoundTrip:./pkg/tokenizer FuzzParseFiles:./pkg/tokenizer \
	FuzzBulkHandshake:./pkg/allreduce FuzzCheckManifest:./pkg/ckpt
# The chaos run (bench/chaos): a job on 3 coordinators + 4 workers under
# FAULTS seeded random faults; fails on any violation. CI runs a few, in
# containers on a private Docker network and as processes on 127.0.0.1.
# RUNTIME: auto (containers where a Docker engine answers), containers, process.
FAULTS  ?= 100
SEED    ?= 1
RUNTIME ?= auto
.PHONY: chaos
chaos:
	$(GO) run ./bench/chaos -faults $(FAULTS) -seed $(SEED) -runtime $(RUNTIME)

.PHONY: fuzz
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t%%:*} ($${t#*:}, $(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$${t%%:*}$$" -fuzztime $(FUZZTIME) $${t#*:} || exit 1; \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./pkg/...

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$'))" || (gofmt -l . ; exit 1)
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

proto:
	GOBIN=$(GOBIN) $(GO) install $(PROTOC_GEN_GO)
	GOBIN=$(GOBIN) $(GO) install $(PROTOC_GEN_GO_GRPC)
	PATH="$(GOBIN):$$PATH" protoc -I proto \
		--go_out=. --go_opt=module=$(MODULE) \
		--go-grpc_out=. --go-grpc_opt=module=$(MODULE) \
		proto/ringmaster/v1/*.proto

clean:
	rm -rf bin

# Container images FROM scratch (static binaries, built offline) for
# docker-compose.yml and deploy/k8s; `make compose-test` runs the cluster
# under docker compose end to end (deploy/compose-test.sh).
.PHONY: images compose-test
images:
	mkdir -p deploy/build/empty
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o deploy/build/ ./cmd/coordinator ./cmd/worker ./cmd/ringctl
	cd deploy/launch && CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o ../build/launch .
	docker build -q -f deploy/coordinator.Dockerfile -t ringmaster-coordinator:latest deploy
	docker build -q -f deploy/worker.Dockerfile -t ringmaster-worker:latest deploy
	@if [ -x $(PROMETHEUS) ]; then $(MAKE) --no-print-directory image-prometheus; \
	else echo "make images: no $(PROMETHEUS) (apt-get install prometheus): skipping ringmaster-prometheus (compose's monitoring profile)"; fi

# ringmaster-prometheus FROM scratch: the Debian package's binary, the
# shared libraries and loader ldd lists, the web assets, and the repo's
# config and alert rules.
PROMETHEUS ?= /usr/bin/prometheus
.PHONY: image-prometheus
image-prometheus:
	rm -rf deploy/build/prometheus && mkdir -p deploy/build/prometheus/usr/bin deploy/build/prometheus/etc/prometheus deploy/build/empty
	cp $(PROMETHEUS) deploy/build/prometheus/usr/bin/prometheus
	for lib in $$(ldd $(PROMETHEUS) | grep -o '/[^ ]*'); do mkdir -p deploy/build/prometheus$$(dirname $$lib) && cp -L $$lib deploy/build/prometheus$$lib; done
	if [ -d /usr/share/prometheus/web ]; then mkdir -p deploy/build/prometheus/usr/share/prometheus && cp -r /usr/share/prometheus/web deploy/build/prometheus/usr/share/prometheus/; fi
	cp deploy/prometheus.yml deploy/alerts.yml deploy/build/prometheus/etc/prometheus/
	docker build -q -f deploy/prometheus.Dockerfile -t ringmaster-prometheus:latest deploy

compose-test:
	deploy/compose-test.sh
