#!/usr/bin/env bash
# Installs the benchmark peers that are not Python/npm deps: redis-server (Debian) and redis-py.
set -euo pipefail
if ! command -v redis-server >/dev/null; then
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq redis-server >/dev/null; fi
fi
.venv/bin/python -c 'import redis' 2>/dev/null || PIP_RETRIES=0 .venv/bin/pip install -q redis
