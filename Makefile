# The suite's commands. Tools are built from tools/go.mod (versions pinned there) into bin/.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
export GOTOOLCHAIN := local
export GOFLAGS := -buildvcs=false

BIN      := $(CURDIR)/bin
BUF      := $(BIN)/buf
LOCAL    := github.com/icpverify/icpverify
SERVICES := filing verification sms-dispatch deadline
MODULES   = $(shell go list -m -f '{{.Dir}}')
DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test?sslmode=disable

.PHONY: help run run-postgres demo bench chaos build test test-unit test-e2e proto proto-check lint breaking tools clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

run: build ## the whole suite in one process on the in-memory store (no database needed); Ctrl-C stops it
	$(BIN)/icpdev

run-postgres: build ## the four services as separate processes on $$DATABASE_URL, printing where they listen
	DATABASE_URL='$(DATABASE_URL)' ./scripts/run-postgres.sh

demo: build ## walk an order through verification against the running suite (make run in another terminal)
	$(BIN)/icpctl demo

bench: ## measure the suite on PostgreSQL (pgbench baseline, Verify, SubmitOrder, SMS, 1M deadlines, RSS) -> bench/results.txt; BENCH_FLAGS=--quick for a smoke run
	go run ./bench/cmd/icpbench $(BENCH_FLAGS)

chaos: ## fault drills against the processes on PostgreSQL (SIGKILL, PostgreSQL restart, two deadline replicas, SIGTERM); not part of make test
	go run ./bench/cmd/icpchaos $(CHAOS_FLAGS)

build: ## build the four services, icpdev and icpctl into bin/
	@for s in $(SERVICES); do go build -o $(BIN)/$$s ./services/$$s/cmd/$$s; done
	@go build -o $(BIN)/ ./cmd/icpdev ./cmd/icpctl

test: proto-check lint ## everything CI runs: generated code fresh, lint, unit, store and end-to-end tests
	@for m in $(MODULES); do echo "== go test $$m"; (cd $$m && go test -count=1 ./...); done

test-unit: ## unit and store tests only (no end-to-end processes)
	@for m in $(MODULES); do [[ $$m == */tests ]] || (cd $$m && go test ./...); done

test-e2e: ## only the end-to-end tests that start the four binaries
	cd tests && go test -count=1 -v ./e2e/...

$(BUF): tools/go.mod tools/go.sum
	cd tools && GOWORK=off go build -o $(BIN)/ github.com/bufbuild/buf/cmd/buf google.golang.org/protobuf/cmd/protoc-gen-go \
	  google.golang.org/grpc/cmd/protoc-gen-go-grpc golang.org/x/tools/cmd/goimports honnef.co/go/tools/cmd/staticcheck

tools: $(BUF) ## build buf, the protoc plugins, goimports and staticcheck pinned in tools/go.mod

proto: tools ## lint the contracts and regenerate pkg/gen
	$(BUF) lint
	rm -rf pkg/gen && $(BUF) generate

proto-check: tools ## fail when pkg/gen is stale
	$(BUF) lint
	@tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && $(BUF) generate -o $$tmp && \
	  diff -r $$tmp/pkg/gen pkg/gen || { echo "pkg/gen is stale: run 'make proto' and commit"; exit 1; }

breaking: tools ## check the contracts against main for breaking changes
	$(BUF) breaking --against '.git#branch=main'

lint: tools ## gofmt, goimports (this module's imports in their own group), go vet and staticcheck on every module
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^pkg/gen/')); [[ -z "$$out" ]] || { echo "gofmt needed: $$out"; exit 1; }
	@out=$$($(BIN)/goimports -local $(LOCAL) -l $$(git ls-files '*.go' | grep -v '^pkg/gen/')); \
	  [[ -z "$$out" ]] || { echo "imports misgrouped (goimports -local $(LOCAL) -w): $$out"; exit 1; }
	@for m in $(MODULES); do (cd $$m && go vet ./... && $(BIN)/staticcheck ./...); done

clean: ## remove built binaries and tools
	rm -rf $(BIN)
