#!/usr/bin/env bash
# Installs Debian's chromium for the dashboard browser test when it is missing.
# Never downloads a browser build of its own: playwright-core drives /usr/bin/chromium.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
# Another apt may hold the lock (a parallel install): wait for it rather than fail.
for i in $(seq 1 60); do
  if $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; then
    break
  fi
  sleep 5
done
test -x /usr/bin/chromium || { echo "chromium could not be installed" >&2; exit 1; }
