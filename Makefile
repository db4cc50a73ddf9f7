# vTPU: every target installs what is missing, so a fresh clone needs only `make demo` / `make test`.
SHELL := /bin/bash
export PIP_RETRIES := 0
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# onnxruntime-node's install script would fetch CUDA providers from NuGet (CPU is bundled);
# its documented switch is this variable (an .npmrc key makes npm warn on every call)
export ONNXRUNTIME_NODE_INSTALL := skip
PYTHON ?= python3
PY := .venv/bin/python
TORCH ?= torch==2.13.0+cpu
TS_SOURCES := $(shell find engine bridge -name '*.ts' 2>/dev/null) protocol/protocol.json protocol/cli.json tsconfig.json

.PHONY: all install build wheel test test-ts test-py bench bench-quick soak demo clean

all: build

node_modules/.installed: package.json .npmrc
	npm install --no-audit --no-fund
	@touch $@

.venv/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv .venv
	@# the CPU build of torch: an unpinned torch pulls CUDA wheels
	$(PY) -m pip install -q '$(TORCH)'
	@# cluster: Ray, for the vtpu.cluster tests (test/py/test_cluster_ray.py)
	$(PY) -m pip install -q -e '.[test,cluster]'
	@touch $@

dist/.built: node_modules/.installed $(TS_SOURCES)
	npx tsc -p tsconfig.json
	@touch $@

# The addons (native/*.c): plain C against Node-API, compiled with the C compiler here.
# Without Node's headers the sidecar still runs: SHM opens answer with an error (clients then
# use frames) and the expert runtime keeps its freed heap pages; say so rather than fail the build.
NODE_INCLUDE := $(shell node -p "require('path').join(process.execPath,'..','..','include','node')" 2>/dev/null)
ADDONS := dist/native/vtpu_shm.node dist/native/vtpu_heap.node dist/native/vtpu_experts_q4.node dist/native/vtpu_experts_q8.node dist/native/vtpu_experts_f32.node dist/native/vtpu_experts_bell.node
dist/native/vtpu_%.node: native/%.c $(wildcard native/*.h) dist/.built
	@mkdir -p dist/native
	@if [ -f "$(NODE_INCLUDE)/node_api.h" ]; then \
	  $${CC:-cc} -O2 -Wall -shared -fPIC -pthread -I"$(NODE_INCLUDE)" $< -o $@ -lm; \
	else echo "warning: Node-API headers not found at $(NODE_INCLUDE): no $@"; fi

build: dist/.built $(ADDONS)
install: build .venv/.installed

# The pip-installable wheel, the built sidecar inside (setup.py, tools/sidecar_bundle.py)
wheel: install
	rm -rf build wheelhouse
	$(PY) -m pip wheel -q --no-deps --no-build-isolation -w wheelhouse .
	@ls -l wheelhouse/*.whl

test: install
	bash test/ui/ensure-chromium.sh
	npx jest --ci
	$(PY) -m pytest -q test/py

test-ts: build
	bash test/ui/ensure-chromium.sh
	npx jest --ci

test-py: install
	$(PY) -m pytest -q test/py

# Every suite in one go on this machine: results in test/bench/results, BENCHMARKS.md and its plots.
bench: install
	bash test/bench/setup.sh
	$(PY) test/bench/run.py

# A reduced size of every suite (a few minutes, CI): fails when a suite breaks or yields no figures, or
# the report no longer renders from them; never on a speed. Keeps no results.
bench-quick: install
	bash test/bench/setup.sh
	$(PY) test/bench/run.py --quick

# Long versions of the crash and load tests: 25 SIGKILLs, 16 clients x 10,000 ops.
soak: install
	VTPU_SOAK=1 $(PY) -m pytest -q test/py/test_durable_crash.py test/py/test_concurrency.py test/py/test_fuzz.py

demo: install
	$(PY) examples/quickstart.py
	$(PY) examples/phext_library.py
	$(PY) examples/knowledge_graph.py
	@# hybrid Qwen3-MoE: experts and lm_head in the sidecar, sparse attention, real tokenizer; both throughputs
	$(PY) examples/qwen3_inference.py --config demo --attention vtpu_sparse --lm-head sidecar --max-new-tokens 24 --rounds 5 --http-port 0

clean:
	rm -rf dist node_modules .venv build wheelhouse
