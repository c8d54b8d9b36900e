#!/usr/bin/env bash
# Installs what the local stack and the tests need, once; re-running is cheap.
#   deploy/local/install.sh          broker, ClickHouse, Prometheus (and promtool), build tools
#   deploy/local/install.sh test     + Chromium and chromedriver, chdb-core (modern ClickHouse engine),
#                                      ZooKeeper (the cluster test)
#   deploy/local/install.sh cluster  + ZooKeeper (`make run CLUSTER=1`)
#   deploy/local/install.sh bench    + the collector's load tools (wrk, h2load, nginx) and a tansu
#                                      with memory storage (benches/load/collector.sh)
#   deploy/local/install.sh manifests  only what deploy/k8s/validate.sh needs: kubernetes-validate
#                                      (pinned) in .local/venv; kubectl is checked, not installed
set -euo pipefail
source "$(dirname "$0")/common.sh"

# The Kubernetes manifests' offline validator (deploy/k8s/validate.sh), in the project's venv
# beside chdb-core, at this version.
KUBERNETES_VALIDATE_VERSION=1.37.0
install_kubernetes_validate() {
  local venv=$ROOT/.local/venv
  if "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('kubernetes-validate') != '$KUBERNETES_VALIDATE_VERSION')" 2>/dev/null; then
    return 0
  fi
  if ! command -v python3 >/dev/null || ! python3 -c 'import ensurepip' 2>/dev/null; then
    log "installing python3 python3-venv (apt)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
  fi
  log "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION into $venv (pip)"
  [[ -x $venv/bin/python ]] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
}
if [[ ${1:-} == manifests ]]; then
  install_kubernetes_validate
  # kubectl (kustomize) renders the manifests; Debian 12 does not package it.
  command -v kubectl >/dev/null ||
    log "kubectl is missing and not a Debian package: install it from pkgs.k8s.io or dl.k8s.io (deploy/k8s/validate.sh says how)"
  exit 0
fi

need_apt=()
command -v clickhouse-server >/dev/null || need_apt+=(clickhouse-server clickhouse-client)
# The broker is built from crates with a patch applied (deploy/local/tansu/build.sh).
command -v patch >/dev/null || need_apt+=(patch)
command -v curl >/dev/null || need_apt+=(curl)
command -v openssl >/dev/null || need_apt+=(openssl)
# Debian's Prometheus 2.42; its package also brings promtool (the rules' tests).
command -v prometheus >/dev/null || need_apt+=(prometheus)
if [[ ${1:-} == test ]]; then
  command -v python3 >/dev/null || need_apt+=(python3 python3-venv)
  # The browser tests drive the Debian build of Chromium over WebDriver.
  command -v chromium >/dev/null || need_apt+=(chromium)
  command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
fi
if [[ ${1:-} == test || ${1:-} == cluster ]]; then
  # Debian's ZooKeeper 3.8 (it brings a Java runtime); stack.sh runs its server class.
  [[ -f /usr/share/java/zookeeper.jar ]] && command -v java >/dev/null || need_apt+=(zookeeper)
fi
if [[ ${1:-} == bench ]]; then
  command -v wrk >/dev/null || need_apt+=(wrk)
  # h2load keeps a fixed request rate (wrk cannot): the latency-at-half-rate run.
  command -v h2load >/dev/null || need_apt+=(nghttp2-client)
  command -v nginx >/dev/null || need_apt+=(nginx-light)
fi
if ((${#need_apt[@]})); then
  log "installing ${need_apt[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# tansu 0.6.0 with our patch to its SQLite storage (deploy/local/tansu/README.md): rebuilt
# when the binary is missing or was built from another patch.
patch_sum=$(sha256sum <"$ROOT/deploy/local/tansu/tansu-storage-0.6.0-exatom.patch" | cut -c1-64)
if ! [[ -x $TANSU ]] || [[ $(cat "$TANSU.patch" 2>/dev/null) != "$patch_sum" ]]; then
  log "building the tansu broker 0.6.0 with its storage patch (about 15 minutes on 2 cores the first time)"
  "$ROOT/deploy/local/tansu/build.sh"
fi

if [[ ${1:-} == test ]]; then
  venv=$ROOT/.local/venv
  if ! [[ -x $venv/bin/python ]] || ! "$venv/bin/python" -c "import chdb" 2>/dev/null; then
    log "installing chdb-core into $venv (pip)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q chdb-core
  fi
fi

# The country database: @ip-location-db/geo-whois-asn-country-mmdb (CC0-1.0; its data CC BY
# 4.0 by the NRO), the tarball checked against the registry's integrity before it is used.
if ! [[ -s $GEO_DATABASE ]]; then
  log "downloading the IP → country database $GEO_VERSION (npm registry, 7.6 MB)"
  tmp=$(mktemp -d)
  curl -fsS -m 300 -o "$tmp/geo.tgz" \
    "https://registry.npmjs.org/@ip-location-db/geo-whois-asn-country-mmdb/-/geo-whois-asn-country-mmdb-$GEO_VERSION.tgz"
  got="sha512-$(openssl dgst -sha512 -binary "$tmp/geo.tgz" | base64 -w0)"
  if [[ $got != "$GEO_INTEGRITY" ]]; then
    log "the geo database's checksum is $got, expected $GEO_INTEGRITY: not installed"
    exit 1
  fi
  tar -xzf "$tmp/geo.tgz" -C "$tmp" package/geo-whois-asn-country.mmdb package/NRO_LICENSE
  mkdir -p "$GEO_HOME"
  mv "$tmp/package/NRO_LICENSE" "$GEO_HOME/"
  mv "$tmp/package/geo-whois-asn-country.mmdb" "$GEO_DATABASE"
  rm -rf "$tmp"
fi

# The packaged tansu has sqlite storage only; memory storage (the load run's broker, out of
# the collector's way) needs the dynostore feature: a second build, beside the first.
if [[ ${1:-} == bench ]] && ! [[ -x $ROOT/.local/tansu-memory/bin/tansu ]]; then
  log "installing tansu 0.6.0 with memory storage into .local/tansu-memory (about 15 minutes)"
  cargo install tansu --locked --version 0.6.0 --features libsql,dynostore \
    --root "$ROOT/.local/tansu-memory"
fi
