# QNet's build. `make dev` runs a one-node network with the example service;
# `make test` is what CI runs.
GO ?= go
export PATH := /usr/local/go/bin:$(PATH)

.PHONY: build dev test vet fmt bench fuzz cross clean

build:
	$(GO) build -o bin/qnet ./cmd/qnet

dev: build
	./bin/qnet dev

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1)

test: vet cross
	$(GO) test -count=1 -timeout 25m ./...

bench:
	$(GO) test -run '^$$' -bench . -benchtime 3x ./bench/...

# The binary builds for the six platforms QNet supports (exec and wasm depots run on all).
cross:
	for os in linux darwin freebsd; do for arch in amd64 arm64; do \
		GOOS=$$os GOARCH=$$arch $(GO) build -o /dev/null ./cmd/qnet || exit 1; done; done

clean:
	rm -rf bin
