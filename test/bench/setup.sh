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
