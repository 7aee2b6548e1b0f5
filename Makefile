# berth's build entry points. `make demo` and `make test` are the two
# commands README.md gives a new user.
GO      ?= go
BIN     := bin/berth
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null)
LDFLAGS := -s -w -X github.com/berth-dev/berth/cli.Version=$(VERSION) -X github.com/berth-dev/berth/cli.Commit=$(COMMIT)

.PHONY: build example demo test test-unit test-e2e lint bench clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/berth

# The example app's image: a static binary in a FROM scratch image (no pulls).
example:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o examples/hello/.build/hello ./examples/hello
	docker build -q -t berth-example/hello:dev examples/hello

# Bring berth up on its embedded defaults and deploy the example.
demo: build example
	scripts/demo.sh

# The whole test suite: formatting, vet, unit tests and end-to-end tests
# against the real Docker Engine, all with the race detector.
test: lint
	$(GO) test -race -count=1 -timeout 45m ./...

test-unit: lint
	$(GO) test -race -count=1 -short ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

bench:
	scripts/bench.sh

clean:
	rm -rf bin examples/hello/.build
