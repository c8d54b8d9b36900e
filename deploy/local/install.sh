#!/usr/bin/env bash
# Installs what the local stack and the tests need, once; re-running is cheap.
#   deploy/local/install.sh          broker, ClickHouse, build tools
#   deploy/local/install.sh test     + Prometheus, Chromium and chromedriver, chdb-core (modern ClickHouse engine)
set -euo pipefail
source "$(dirname "$0")/common.sh"

need_apt=()
command -v clickhouse-server >/dev/null || need_apt+=(clickhouse-server clickhouse-client)
if [[ ${1:-} == test ]]; then
  command -v prometheus >/dev/null || need_apt+=(prometheus)
  command -v python3 >/dev/null || need_apt+=(python3 python3-venv)
  # The browser tests drive the Debian build of Chromium over WebDriver.
  command -v chromium >/dev/null || need_apt+=(chromium)
  command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
fi
if ((${#need_apt[@]})); then
  log "installing ${need_apt[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! [[ -x $TANSU ]] || ! "$TANSU" --version 2>/dev/null | grep -q "0.6.0"; then
  log "installing the tansu broker 0.6.0 (cargo install, about 10 minutes on 2 cores)"
  cargo install tansu --locked --version 0.6.0 --features libsql
fi

if [[ ${1:-} == test ]]; then
  venv=$ROOT/.local/venv
  if ! [[ -x $venv/bin/python ]] || ! "$venv/bin/python" -c "import chdb" 2>/dev/null; then
    log "installing chdb-core into $venv (pip)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q chdb-core
  fi
fi
