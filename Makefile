# dfs: build, test, run and benchmark. `make run` starts a local cluster on
# ./mnt; `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
GO ?= go
BIN := bin
SHARED_BENCH := $(CURDIR)/../shared/bench
# Debian packages the tests use: fuse3 for mounting, attr (getfattr and
# setfattr), acl (getfacl and setfacl), sqlite3, git and rsync as real
# programs on the mount, systemd for systemd-analyze verify of the units,
# chromium for the status page's screenshot test.
TEST_PACKAGES := fuse3 attr sqlite3 git rsync acl systemd chromium prometheus
# Unit packages get the race detector; tests/ boots whole clusters of
# processes and runs without it to keep within CI's time.
UNIT_PKGS = $$($(GO) list ./... | grep -v '^dfs/tests$$')

.PHONY: build test deps vet fmtcheck unit integration soak run bench proto clean install uninstall

build:
	$(GO) build -o $(BIN)/ ./cmd/...

test: deps vet fmtcheck unit integration

deps:
	@missing=""; for p in $(TEST_PACKAGES); do \
		dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing$$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing </dev/null; \
		else echo "warning: missing packages$$missing (run as root to install them)"; fi; \
	fi

vet:
	$(GO) vet ./...

fmtcheck:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

unit:
	$(GO) test -race -timeout 8m $(UNIT_PKGS)

integration:
	$(GO) test -count=1 -timeout 25m ./tests/

# soak runs the fault-injection suite's long variants: 10 leader kills,
# 1 GiB re-replicated after a chunkserver is lost, three rounds of rolling
# restarts under load, and so on; then the fsx-style exerciser for
# FSX_DURATION and the 100,000-entry directory.
FSX_DURATION ?= 10m
soak:
	DFS_SOAK=1 $(GO) test -count=1 -timeout 45m -v -run 'TestFault|TestGracefulRollingRestart' ./tests/
	DFS_LONG=1 $(GO) test -count=1 -timeout 60m -v -run 'TestFsx|TestPosixReaddirLarge' ./tests/ -fsx.duration $(FSX_DURATION)

run: build
	$(BIN)/dfsctl dev

# bench starts a fresh 3-master, 3-chunkserver cluster and runs bench/run.sh
# in it: the shared comparison against a loopback FUSE reference per layout,
# the master alone through the client library, the namespace at scale; then
# the comparison in an ec:4+2 directory on a 6-chunkserver cluster (K+M
# servers are needed); then failover, re-replication and erasure-coding
# figures from their tests.
bench: build
	@test -x $(SHARED_BENCH)/compare.sh || { echo "no $(SHARED_BENCH)/compare.sh"; exit 1; }
	$(GO) build -o $(BIN)/ ./bench/metabench ./bench/nsbench ./bench/lockbench
	mkdir -p bench/results
	d=$$(mktemp -d -t dfs-bench.XXXXXX); out=bench/results/$$(date +%Y-%m-%d-%H%M%S).txt; \
	{ echo "# dfs bench $$(date -Is) commit $$(git rev-parse --short HEAD 2>/dev/null)"; \
	  $(BIN)/dfsctl dev -dir $$d/dfs -mnt $$d/mnt -chunkservers 3 -- \
		env COMPARE=$(SHARED_BENCH)/compare.sh BIN=$(CURDIR)/$(BIN) $(CURDIR)/bench/run.sh; } 2>&1 | tee $$out; \
	status=$${PIPESTATUS[0]}; rm -rf $$d; \
	d=$$(mktemp -d -t dfs-bench.XXXXXX); \
	{ $(BIN)/dfsctl dev -dir $$d/dfs -mnt $$d/mnt -chunkservers 6 -- \
		env COMPARE=$(SHARED_BENCH)/compare.sh BIN=$(CURDIR)/$(BIN) BENCH_LAYOUTS=ec:4+2 BENCH_PARTS=compare $(CURDIR)/bench/run.sh; } 2>&1 | tee -a $$out; \
	[ $${PIPESTATUS[0]} = 0 ] || status=1; rm -rf $$d; \
	{ echo "## failover and re-replication (fault tests, soak length)"; \
	  set -o pipefail; DFS_SOAK=1 $(GO) test -count=1 -timeout 20m -v -run 'TestFaultLeaderKill|TestFaultChunkServerGone' ./tests/ \
		| grep -E 'kill -9 of the leader|chunkserver gone|^(ok|FAIL|---)'; } 2>&1 | tee -a $$out; \
	[ $${PIPESTATUS[0]} = 0 ] || status=1; \
	{ echo "## erasure coding: MB/s through the mount, 9 chunkservers, 256 MiB files; codec alone on one core"; \
	  set -o pipefail; DFS_BENCH=1 $(GO) test -count=1 -timeout 20m -v -run 'TestECThroughput' ./tests/ \
		| grep -E 'ec bench:|^(ok|FAIL|---)'; } 2>&1 | tee -a $$out; \
	[ $${PIPESTATUS[0]} = 0 ] || status=1; \
	python3 bench/summarize.py $$out || status=1; \
	echo "results in $$out, $${out%.txt}.md and bench/results/README.md"; exit $$status

proto:
	PATH="$$($(GO) env GOPATH)/bin:$$PATH" protoc -I api \
		--plugin=protoc-gen-go="$$($(GO) tool -n protoc-gen-go)" \
		--plugin=protoc-gen-go-grpc="$$($(GO) tool -n protoc-gen-go-grpc)" \
		--go_out=api --go_opt=paths=source_relative \
		--go-grpc_out=api --go-grpc_opt=paths=source_relative \
		api/dfs.proto

# install puts the binaries in $(PREFIX)/bin, dfsmount again as the mount
# helpers /sbin/mount.dfs and /sbin/mount.fuse.dfs, the systemd units and
# the dfs user's sysusers.d entry under /lib and /usr/lib, and sample
# configs in /etc/dfs (never over existing ones), all below $(DESTDIR).
# docs/operations.md says how to use them.
PREFIX ?= /usr/local
DESTDIR ?=
SBINDIR ?= /sbin
UNITDIR ?= /lib/systemd/system
SYSUSERSDIR ?= /usr/lib/sysusers.d
SYSCONFDIR ?= /etc
DOCDIR ?= $(PREFIX)/share/doc/dfs
DAEMONS := dfsmaster dfschunk dfsmount dfsctl
HELPERS := mount.dfs mount.fuse.dfs

install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(SBINDIR) $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(SYSCONFDIR)/dfs $(DESTDIR)$(DOCDIR)
	for b in $(DAEMONS); do install -m 0755 $(BIN)/$$b $(DESTDIR)$(PREFIX)/bin/$$b; done
	for h in $(HELPERS); do install -m 0755 $(BIN)/dfsmount $(DESTDIR)$(SBINDIR)/$$h; done
	for u in dfsmaster.service dfschunk.service; do \
		sed 's|/usr/local/|$(PREFIX)/|g; s|/etc/dfs/|$(SYSCONFDIR)/dfs/|g' deploy/$$u > $(DESTDIR)$(UNITDIR)/$$u; \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$u; done
	install -m 0644 deploy/dfs.sysusers $(DESTDIR)$(SYSUSERSDIR)/dfs.conf
	for c in dfsmaster.conf dfschunk.conf dfsmount.conf; do \
		test -e $(DESTDIR)$(SYSCONFDIR)/dfs/$$c || install -m 0644 deploy/$$c $(DESTDIR)$(SYSCONFDIR)/dfs/$$c; done
	sed 's|/usr/local/|$(PREFIX)/|g' deploy/mnt-dfs.mount > $(DESTDIR)$(DOCDIR)/mnt-dfs.mount
	install -m 0644 docs/operations.md $(DESTDIR)$(DOCDIR)/operations.md
	install -m 0644 deploy/dfs-alerts.yml $(DESTDIR)$(DOCDIR)/dfs-alerts.yml

# uninstall removes what install put in place except the configs in
# /etc/dfs and the data in /var/lib/dfs.
uninstall:
	for b in $(DAEMONS); do rm -f $(DESTDIR)$(PREFIX)/bin/$$b; done
	for h in $(HELPERS); do rm -f $(DESTDIR)$(SBINDIR)/$$h; done
	rm -f $(DESTDIR)$(UNITDIR)/dfsmaster.service $(DESTDIR)$(UNITDIR)/dfschunk.service \
		$(DESTDIR)$(SYSUSERSDIR)/dfs.conf
	rm -rf $(DESTDIR)$(DOCDIR)

# clean removes build output; the dev cluster's data in .dfs is kept
# (rm -rf .dfs to start afresh).
clean:
	rm -rf $(BIN)
