# ovsplane build, test and benchmark entry points.
SHELL := /bin/bash
BUN := node_modules/.bin/bun
ESBUILD := node_modules/.bin/esbuild
LINKS := ovsplane-ipam ovsplanectl ovsplane-agent
DESTDIR ?=
CNI_BIN_DIR ?= /opt/cni/bin
CNI_CONF_DIR ?= /etc/cni/net.d

.PHONY: build bundles bin test unit integration bench demo typecheck clean install

build: bin bundles

node_modules: package-lock.json
	npm ci --no-audit --no-fund
	touch node_modules

# Development bundles, run with node (tests of logic, debugging).
bundles: node_modules
	@mkdir -p dist/js
	$(ESBUILD) --log-level=warning --bundle --platform=node --target=node20 --format=cjs --external:bun:ffi \
	  --outdir=dist/js --out-extension:.js=.cjs $(filter-out cmd/multicall.ts,$(wildcard cmd/*.ts))

# The shipped executable: one Bun-compiled multi-call binary; the other names are symlinks to it. Each program is an
# entry point with bytecode of its own, loaded only under its name (cmd/multicall.ts answers VERSION itself and
# sets the JIT policy of the short-lived programs).
bin: node_modules
	@mkdir -p dist/bin
	$(BUN) build --compile --minify --bytecode --format=esm --no-compile-autoload-dotenv --no-compile-autoload-bunfig cmd/multicall.ts cmd/ovsplane.ts cmd/ovsplane-ipam.ts cmd/ovsplane-agent.ts cmd/ovsplanectl.ts --outfile dist/bin/.ovsplane.tmp >/dev/null
	mv -f dist/bin/.ovsplane.tmp dist/bin/ovsplane
	@for l in $(LINKS); do ln -sfn ovsplane dist/bin/$$l; done

typecheck: node_modules
	node_modules/.bin/tsc -p .

test: build
	bash scripts/build-libcni-driver.sh
	bash scripts/test.sh

unit: node_modules
	bash scripts/test.sh unit

integration: build
	bash scripts/test.sh integration

bench: build
	bash scripts/build-libcni-driver.sh
	node_modules/.bin/tsx scripts/bench.ts
	node_modules/.bin/tsx scripts/bench-agent.ts
	node_modules/.bin/tsx scripts/bench-throughput.ts
	node_modules/.bin/tsx scripts/bench-policy.ts

demo: build
	node_modules/.bin/tsx scripts/demo.ts

clean:
	rm -rf dist

# For packagers: the executables (and, with CONF_FILE=..., a conflist) under DESTDIR.
install: bin
	dist/bin/ovsplanectl install --source dist/bin/ovsplane --bin-dir $(DESTDIR)$(CNI_BIN_DIR) \
	  --conf-dir $(DESTDIR)$(CNI_CONF_DIR) $(if $(CONF_FILE),--conf-file $(CONF_FILE)) $(INSTALL_FLAGS)
