# blinkchamber. Quick start: `make demo`, then `make test`.
# Real servers (etcd, kube-apiserver, Vault) are built from Go modules into
# $(TOOLS_CACHE) once per machine and reused; see test/toolchain.

GO          ?= go
TOOLS_CACHE ?= $(or $(BLINKCHAMBER_TOOLS_CACHE),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/blinkchamber/tools)
export BLINKCHAMBER_TOOLS_CACHE := $(TOOLS_CACHE)
BIN         ?= bin
LDFLAGS     := -s -w
TEST_FLAGS  ?= -timeout 45m
# Execution counts, not durations: with a duration, Go 1.26's fuzz
# coordinator can report a spurious "context deadline exceeded" failure at
# the deadline (golang/go#75804, fixed in Go 1.27).
FUZZ_TIME   ?= 20000x

.PHONY: all build images test unit fuzz demo bench soak lint tools deps clean

VERSION     ?= dev

all: build

## build: static, stripped binaries of every command into $(BIN)/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

## deps: system packages the tests need (containerd, runc, CNI plugins, iptables, PostgreSQL, util-linux, ca-certificates), from Debian
deps:
	bash hack/system-deps.sh

## images: the injector, agent and CLI images as archives, $(IMAGES)/<image>.tar,
## built without Docker (IMAGE_BUILDER=docker: from the Dockerfile, where a
## Docker engine runs); load with `ctr -n k8s.io images import`, mirror with
## `blinkchamber images push --registry HOST`
IMAGES        ?= $(BIN)/images
IMAGE_BUILDER ?= go
images:
ifeq ($(IMAGE_BUILDER),docker)
	@docker info >/dev/null 2>&1 || { echo "make images: IMAGE_BUILDER=docker but no Docker engine answers (docker info failed)"; exit 1; }
	mkdir -p $(IMAGES)
	for t in injector agent cli; do \
	  docker build --target $$t --build-arg VERSION=$(VERSION) -t ghcr.io/blinkchamber/$$t:$(VERSION) . && \
	  docker save -o $(IMAGES)/$$t.tar ghcr.io/blinkchamber/$$t:$(VERSION) || exit 1; done
else
	$(GO) run ./hack/images -version $(VERSION) -out $(IMAGES)
endif

## tools: build (or find cached) etcd, Vault and the Kubernetes parts of the local node
tools: deps
	$(GO) run ./test/toolchain/cmd/tools

## test: every test, unit and end to end, against the real servers
test: tools lint
	$(GO) test $(TEST_FLAGS) ./...
	$(MAKE) fuzz

## unit: the tests that need no server
unit:
	$(GO) test ./pkg/...

## fuzz: each fuzz target for a short bounded time (seed corpora also run in `go test`)
FUZZ = $(GO) test -run '^$$' -fuzztime $(FUZZ_TIME) -fuzzminimizetime 200x
fuzz:
	$(FUZZ) ./pkg/mutate -fuzz '^FuzzParse$$'
	$(FUZZ) ./pkg/mutate -fuzz '^FuzzPodSpec$$'
	$(FUZZ) ./pkg/template -fuzz '^FuzzValidate$$'
	$(FUZZ) ./pkg/template -fuzz '^FuzzRender$$'
	$(FUZZ) ./pkg/agent -fuzz '^FuzzDecode$$'
	$(FUZZ) ./pkg/agent -fuzz '^FuzzValidateReloadURL$$'
	# Each input renders 17 templates against 8 Vault faults: fewer executions.
	$(GO) test -run '^$$' -fuzztime 400x -fuzzminimizetime 20x ./pkg/agent -fuzz '^FuzzComputedRequestsLeakNothing$$'
	$(FUZZ) ./pkg/envfile -fuzz '^FuzzRoundTrip$$'
	$(FUZZ) ./pkg/envfile -fuzz '^FuzzParse$$'
	$(FUZZ) ./pkg/bootstrap/config -fuzz '^FuzzParse$$'
	$(FUZZ) ./pkg/injector -fuzz '^FuzzAdmissionReview$$'
	$(FUZZ) ./test/node -fuzz '^FuzzParseMountinfo$$'
	$(FUZZ) ./test/images -fuzz '^FuzzParseDockerfile$$'
	$(FUZZ) ./test/images -fuzz '^FuzzParseLDD$$'

## demo: the whole job end to end on a real local node (as root), then tear down
demo: tools
	$(GO) run ./test/demo

## bench: benchmarks; the agent comparison rewrites docs/benchmarks.md
bench: tools
	$(GO) test -run '^$$' -bench . -benchmem ./pkg/...
	$(GO) run ./test/bench/agentbench -out docs/benchmarks.md -plots docs/benchmarks -sizes 1,10,50 -starts 20 -replicas 3 -idle 5m0s -render-interval 5s -rotation-intervals 1s,5s -rotations 50
	mkdir -p docs/benchmarks && $(GO) run ./test/bench/fleetbench -out docs/benchmarks.md -plot docs/benchmarks/fleet.png
	$(GO) run ./test/bench/webhookbench -out docs/benchmarks.md -plot-dir docs/benchmarks
	$(GO) run ./test/bench/nodebench -out docs/benchmarks.md -cold

## soak: 200 agents for 10 minutes, 30 s token TTLs, rotating secrets; then the
## webhook under 64 concurrent clients for 60 s; not run by CI
SOAK_FLAGS ?= -agents 200 -duration 10m -warmup 2m
soak: tools
	$(GO) run ./test/soak $(SOAK_FLAGS)
	$(GO) run ./test/webhooksoak -concurrency 64 -duration 60s

## lint: formatting and vet
lint:
	@out=$$(gofmt -l cmd pkg test); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf $(BIN)
