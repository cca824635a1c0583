GO ?= go
BIN := bin

.PHONY: build test run proto bench clean vet

build:
	$(GO) build -o $(BIN)/ ./cmd/...

proto:
	PATH="$$($(GO) env GOPATH)/bin:$$PATH" protoc -I api \
		--plugin=protoc-gen-go="$$($(GO) tool -n protoc-gen-go)" \
		--plugin=protoc-gen-go-grpc="$$($(GO) tool -n protoc-gen-go-grpc)" \
		--go_out=api --go_opt=paths=source_relative \
		--go-grpc_out=api --go-grpc_opt=paths=source_relative \
		api/dfs.proto

vet:
	$(GO) vet ./...

clean:
	rm -rf $(BIN)
