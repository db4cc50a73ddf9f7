#!/usr/bin/env bash
# Installs the benchmark peers and tools that are not Python/npm deps: redis-server and wrk
# (Debian), etcd (Debian etcd-server, the durability peer), redis-py.
set -euo pipefail
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v wrk >/dev/null || missing+=(wrk)
command -v etcd >/dev/null || missing+=(etcd-server)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq "${missing[@]}" >/dev/null; fi
fi
.venv/bin/python -c 'import redis, faiss, scipy, matplotlib' 2>/dev/null || PIP_RETRIES=0 .venv/bin/pip install -q -e '.[bench]'
# llama.cpp, the Qwen3-MoE suite's peer: node-llama-cpp (pinned in test/bench/llama/package.json, prebuilt
# CPU binaries from npm) and the gguf package that writes the model file it runs.
[ -d test/bench/llama/node_modules/node-llama-cpp ] || (cd test/bench/llama && npm ci --no-audit --no-fund)
.venv/bin/python -c 'import gguf' 2>/dev/null || PIP_RETRIES=0 .venv/bin/python -m pip install -q 'gguf==0.19.0'
