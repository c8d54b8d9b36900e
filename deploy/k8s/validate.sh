#!/usr/bin/env bash
# Offline checks of the Kubernetes manifests and the image definition (`make manifests`,
# part of `make test`). Needs no cluster:
#   1. `kubectl kustomize` renders the base, the example overlay (Strimzi topics) and the base
#      with components/admin-topics (the topics Job instead);
#   2. deploy/k8s/check.py validates every rendered object (kubernetes-validate, Kubernetes
#      1.32 schemas, strict; KafkaTopic against kafkatopic.schema.json) and holds the
#      renderings to the rules of README's "Running in production" (see check.py);
#   3. the Prometheus scrape configuration for Kubernetes (prometheus/prometheus.yml) passes
#      `promtool check config`, its pod discovery swapped for a static target (Debian's
#      Prometheus 2.42 is built without Kubernetes discovery), and its relabelling gives the
#      job names the rules select on;
#   4. the image's scripts parse, and when the release binaries are built, the libraries they
#      link are the ones deploy/container/Containerfile copies.
# kubectl and the venv's kubernetes-validate: deploy/local/install.sh manifests.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
K8S=$ROOT/deploy/k8s
PY=$ROOT/.local/venv/bin/python

if ! command -v kubectl >/dev/null; then
  cat >&2 <<'EOF'
validate.sh: kubectl is missing. It renders the manifests (`kubectl kustomize`, kustomize 5);
Debian 12 does not package it. Install kubectl 1.32 or later from the Kubernetes project:
  the apt repository https://pkgs.k8s.io/core:/stable:/v1.32/deb/ (package kubectl), or
  the static binary https://dl.k8s.io/release/v1.32.0/bin/linux/amd64/kubectl
then run `make manifests` again.
EOF
  exit 1
fi
if ! [[ -x $PY ]] || ! "$PY" -c 'import kubernetes_validate' 2>/dev/null; then
  echo "validate.sh: kubernetes-validate is missing from $ROOT/.local/venv: run deploy/local/install.sh manifests" >&2
  exit 1
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# The base with the topics Job instead of the KafkaTopics: a throwaway overlay (kustomize
# takes only relative paths to other kustomizations).
mkdir -p "$out/admin-topics"
cat >"$out/admin-topics/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: exatom
resources: [$(realpath --relative-to="$out/admin-topics" "$K8S/base")]
components: [$(realpath --relative-to="$out/admin-topics" "$K8S/components/admin-topics")]
EOF

render() { # NAME DIR
  if ! kubectl kustomize "$2" >"$out/$1.yaml" 2>"$out/$1.err"; then
    echo "FAIL kubectl kustomize $2:" >&2
    cat "$out/$1.err" >&2
    exit 1
  fi
  echo "ok   rendered $1: $(grep -c '^kind:' "$out/$1.yaml") objects"
}
render base "$K8S/base"
render example "$K8S/overlays/example"
render admin-topics "$out/admin-topics"

"$PY" "$K8S/check.py" base="$out/base.yaml" example="$out/example.yaml" admin-topics="$out/admin-topics.yaml"
# And the checker itself: every rule, broken once on the example, is caught.
"$PY" "$K8S/check.py" --self-test "$out/example.yaml"

# The scrape configuration: syntax and regexes by promtool, the relabelling by hand.
if command -v promtool >/dev/null; then
  "$PY" - "$K8S/prometheus/prometheus.yml" "$out/prometheus.yml" "$ROOT" <<'EOF'
import re, sys, yaml
src, dst, root = sys.argv[1:]
conf = yaml.safe_load(open(src))
conf["rule_files"] = [f"{root}/deploy/prometheus/rules/*.yml"]
job = conf["scrape_configs"][0]
job.pop("kubernetes_sd_configs")
job["static_configs"] = [{"targets": ["127.0.0.1:1"]}]
yaml.safe_dump(conf, open(dst, "w"))

# The relabelling on a pod as Kubernetes discovery describes it (regexes anchored, as
# Prometheus anchors them): kept, scraped on its annotated port and path, job from its name.
def relabel(labels, rules):
    for r in rules:
        value = ";".join(labels.get(s, "") for s in r.get("source_labels", []))
        m = re.fullmatch(r.get("regex", "(.*)"), value)
        action = r.get("action", "replace")
        if action == "keep":
            if not m:
                return None
        elif action == "replace" and m:
            labels[r["target_label"]] = m.expand(r.get("replacement", "$1").replace("$", "\\"))
    return labels
for program, port in [("collector", "8080"), ("anonymizer", "9102"), ("sessionizer", "9103"),
                      ("aggregator", "9104"), ("console", "8090")]:
    pod = {
        "__address__": "10.1.2.3:" + port, "__meta_kubernetes_pod_phase": "Running",
        "__meta_kubernetes_pod_label_app_kubernetes_io_part_of": "exatom",
        "__meta_kubernetes_pod_label_app_kubernetes_io_name": "exatom-" + program,
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
        "__meta_kubernetes_pod_annotation_prometheus_io_port": port,
        "__meta_kubernetes_pod_annotation_prometheus_io_path": "/metrics",
        "__meta_kubernetes_pod_name": "exatom-" + program + "-abc", "__meta_kubernetes_namespace": "exatom",
    }
    got = relabel(dict(pod), job["relabel_configs"])
    want = {"job": "exatom-" + program, "__address__": "10.1.2.3:" + port, "__metrics_path__": "/metrics"}
    if got is None or any(got.get(k) != v for k, v in want.items()):
        sys.exit(f"FAIL prometheus.yml relabelling of the {program} pod gives {got}")
    other = dict(pod, __meta_kubernetes_pod_label_app_kubernetes_io_part_of="other")
    if relabel(other, job["relabel_configs"]) is not None:
        sys.exit("FAIL prometheus.yml keeps a pod that is not Exatom's")
EOF
  promtool check config "$out/prometheus.yml" >"$out/promtool.log" 2>&1 || {
    cat "$out/promtool.log" >&2
    exit 1
  }
  echo "ok   prometheus/prometheus.yml: promtool check config (with the rules), job names exatom-<program>"
else
  echo "skip prometheus/prometheus.yml: no promtool here (deploy/local/install.sh installs it)"
fi

# The image: its scripts parse; the libraries the binaries link are those the image holds.
bash -n "$ROOT/deploy/container/base.sh"
bash -n "$ROOT/deploy/container/build.sh"
if compgen -G "$ROOT/target/release/exatom-*" >/dev/null && command -v ldd >/dev/null; then
  for b in collector anonymizer sessionizer aggregator console admin; do
    bin=$ROOT/target/release/exatom-$b
    [[ -x $bin ]] || continue
    for lib in $(ldd "$bin" | awk '$1 !~ /^linux-vdso/ {print $1}'); do
      grep -qF "$(basename "$lib")" "$ROOT/deploy/container/Containerfile" || {
        echo "FAIL exatom-$b links $lib, which deploy/container/Containerfile does not copy" >&2
        exit 1
      }
    done
  done
  echo "ok   deploy/container: the Containerfile copies every library the built binaries link"
else
  echo "skip deploy/container libraries: no release binaries built"
fi
echo "manifests: all checks passed"
