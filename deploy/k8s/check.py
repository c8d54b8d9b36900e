"""Checks rendered Kubernetes manifests (deploy/k8s/validate.sh runs it; the venv's Python).

    check.py NAME=RENDERED.yaml [NAME=RENDERED.yaml ...]

Every object is validated offline: the API's own kinds with kubernetes-validate against the
Kubernetes 1.32 schemas, strictly (an unknown field is an error); Strimzi's KafkaTopic, which
kubernetes-validate has no schema for, against deploy/k8s/kafkatopic.schema.json (jsonschema).
Then the rules README's "Running in production" promises, per rendering:

- every Deployment: readiness on /readyz and liveness on /healthz, on a port it declares and
  its program listens on (not loopback); CPU and memory requests and limits on every
  container; the prometheus.io/scrape, port (= the listen port) and path (/metrics)
  annotations; non-root, read-only root file system, no privilege escalation, every
  capability dropped; no service links (Kubernetes' EXATOM_<SERVICE>_* variables would be
  unknown settings); no service account token; a PodDisruptionBudget selecting its pods
  that lets one go; a Service selects the pods of a Deployment;
- every EXATOM_* variable a pod gets (from the ConfigMap or its own env) is a setting of
  services/core/src/config.rs SETTINGS: an unknown one stops the program;
- no secret in a ConfigMap: no key name with salt/key/password/token/secret in it (but
  EXATOM_SALTS_TOPIC and EXATOM_ALLOW_LONG_SALT_RETENTION), no value shaped like a key
  (64 hex digits), a password hash, a token digest or a PEM block;
  EXATOM_ALLOW_LONG_SALT_RETENTION never true;
- Secrets are mounted as whole directories (no subPath, so a changed Secret reaches the
  running pod) and exist where the rendering makes Secrets; every Secret the repository
  renders holds placeholders only (no 64-hex key, no Argon2 hash, no token digest);
- every object carries app.kubernetes.io/part-of and app.kubernetes.io/component (the
  install and upgrade steps apply by them); the migrations Job runs `exatom-admin migrate`; a KafkaTopic set is the six topics of
  README's "Topics" with their retention, cleanup.policy delete, the salts topic on one
  partition, at least as many partitions as replicas of the stage reading it, and
  min.insync.replicas below the replication factor.

`check.py --self-test RENDERED.yaml` breaks each rule once on a clean rendering (MUTATIONS)
and fails unless every one is caught by its own message.
"""

import base64
import json
import pathlib
import re
import sys

import jsonschema
import kubernetes_validate
import yaml

K8S_VERSION = "1.32.0"
HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent

# README, "Topics" (and kafka::topic_layout): retention.ms and whether one partition.
HOUR_MS = 3_600_000
TOPICS = {
    "exatom.raw": (24 * HOUR_MS, False),
    "exatom.anon": (7 * 24 * HOUR_MS, False),
    "exatom.sessions": (7 * 24 * HOUR_MS, False),
    "exatom.salts": (48 * HOUR_MS, True),
    "exatom.dlq": (24 * HOUR_MS, False),
    "exatom.replay": (24 * HOUR_MS, False),
}
# Which consumer stage reads which topic (replicas beyond its partitions stand idle).
READS = {
    "exatom-anonymizer": "exatom.raw",
    "exatom-sessionizer": "exatom.anon",
    "exatom-aggregator": "exatom.sessions",
}
# The address each program serves /healthz, /readyz and /metrics on.
LISTEN = {
    "exatom-collector": "EXATOM_LISTEN",
    "exatom-anonymizer": "EXATOM_ADMIN_LISTEN",
    "exatom-sessionizer": "EXATOM_ADMIN_LISTEN",
    "exatom-aggregator": "EXATOM_ADMIN_LISTEN",
    "exatom-console": "EXATOM_CONSOLE_LISTEN",
}
SECRETISH_NAME = re.compile(r"salt|key|password|passwd|token|secret", re.I)
# Settings about salts, not salts: a topic's name, and a switch checked on its own below.
NOT_SECRET_NAMES = {"EXATOM_SALTS_TOPIC", "EXATOM_ALLOW_LONG_SALT_RETENTION"}
SECRETISH_VALUE = re.compile(
    r"(?<![0-9a-fA-F])[0-9a-fA-F]{64}(?![0-9a-fA-F])|\$argon2|-----BEGIN|password_hash\s*=|token_sha256\s*=\s*\[\s*\""
)


def settings():
    """The EXATOM_* names every program knows (services/core/src/config.rs, SETTINGS)."""
    text = (ROOT / "services/core/src/config.rs").read_text()
    block = text.split("pub const SETTINGS", 1)[1].split("];", 1)[0]
    keys = re.findall(r'^\s*"([a-z0-9_]+)":', block, re.M)
    if len(keys) < 20:
        raise SystemExit("check.py: could not read SETTINGS from services/core/src/config.rs")
    return {"EXATOM_" + k.upper() for k in keys} | {"EXATOM_CONFIG"}


class Report:
    def __init__(self, name):
        self.name = name
        self.errors = []

    def fail(self, obj, message):
        self.errors.append(f"{self.name}: {obj}: {message}")


def ident(doc):
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def validate_schemas(docs, report):
    topic_schema = json.loads((HERE / "kafkatopic.schema.json").read_text())
    for doc in docs:
        if doc.get("kind") == "KafkaTopic":
            for error in jsonschema.Draft202012Validator(topic_schema).iter_errors(doc):
                path = "/".join(str(p) for p in error.absolute_path)
                report.fail(ident(doc), f"KafkaTopic schema: {path}: {error.message}")
            continue
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            report.fail(ident(doc), f"no schema for {doc.get('apiVersion')} {doc.get('kind')}")
        except kubernetes_validate.ValidationError as e:
            where = "/".join(str(p) for p in e.path)
            report.fail(ident(doc), f"Kubernetes {K8S_VERSION} schema: {where}: {e.message}")


def pod_checks(obj, pod, report, configmaps, secrets, known):
    """What every Exatom pod (Deployment or Job) must hold."""
    if pod.get("enableServiceLinks") is not False:
        report.fail(obj, "enableServiceLinks must be false (EXATOM_* service variables stop the programs)")
    if pod.get("automountServiceAccountToken") is not False:
        report.fail(obj, "automountServiceAccountToken must be false (no program talks to the API)")
    psc = pod.get("securityContext", {})
    if psc.get("runAsNonRoot") is not True or not psc.get("runAsUser"):
        report.fail(obj, "pod securityContext: runAsNonRoot true and a non-zero runAsUser")
    secret_volumes = {}
    for v in pod.get("volumes", []):
        if "secret" in v:
            secret_volumes[v["name"]] = v["secret"]["secretName"]
            if secrets is not None and v["secret"]["secretName"] not in secrets:
                report.fail(obj, f"volume {v['name']}: Secret {v['secret']['secretName']} is not rendered")
        if "configMap" in v:
            report.fail(obj, f"volume {v['name']}: a ConfigMap mounted as files (secrets are Secrets; settings are env)")
    for c in pod.get("containers", []) + pod.get("initContainers", []):
        cname = f"{obj} container {c['name']}"
        res = c.get("resources", {})
        for kind in ("requests", "limits"):
            for r in ("cpu", "memory"):
                if r not in res.get(kind, {}):
                    report.fail(cname, f"resources.{kind}.{r} missing")
        sc = c.get("securityContext", {})
        if sc.get("readOnlyRootFilesystem") is not True:
            report.fail(cname, "readOnlyRootFilesystem must be true")
        if sc.get("allowPrivilegeEscalation") is not False:
            report.fail(cname, "allowPrivilegeEscalation must be false")
        if "ALL" not in sc.get("capabilities", {}).get("drop", []):
            report.fail(cname, "capabilities must drop ALL")
        for m in c.get("volumeMounts", []):
            if m["name"] in secret_volumes and "subPath" in m:
                report.fail(cname, f"Secret volume {m['name']} mounted with subPath: changes would never reach the pod")
        env = {}
        for src in c.get("envFrom", []):
            if "secretRef" in src:
                report.fail(cname, "envFrom a Secret: name each secret variable (secretKeyRef) instead")
            ref = src.get("configMapRef", {}).get("name")
            if ref is None:
                continue
            if ref not in configmaps:
                report.fail(cname, f"envFrom ConfigMap {ref} is not rendered")
                continue
            env.update(configmaps[ref].get("data", {}))
        for e in c.get("env", []):
            env[e["name"]] = e.get("value")
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref and secrets is not None:
                if ref["name"] not in secrets:
                    report.fail(cname, f"{e['name']}: Secret {ref['name']} is not rendered")
                elif ref["key"] not in secrets[ref["name"]].get("data", {}):
                    report.fail(cname, f"{e['name']}: Secret {ref['name']} has no key {ref['key']}")
        for name in env:
            if name.startswith("EXATOM_") and name not in known:
                report.fail(cname, f"{name} is not a setting (services/core/src/config.rs): the program would refuse to start")
        if env.get("EXATOM_ALLOW_LONG_SALT_RETENTION") not in (None, "false"):
            report.fail(cname, "EXATOM_ALLOW_LONG_SALT_RETENTION must stay false in production")
        yield c, env


def check(name, docs, known):
    report = Report(name)
    validate_schemas(docs, report)
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    # The install and upgrade steps apply by these labels: an object without them is skipped.
    for d in docs:
        labels = d.get("metadata", {}).get("labels") or {}
        if labels.get("app.kubernetes.io/part-of") != "exatom" or not labels.get("app.kubernetes.io/component"):
            report.fail(ident(d), "labels app.kubernetes.io/part-of: exatom and app.kubernetes.io/component missing")
    configmaps = {d["metadata"]["name"]: d for d in by_kind.get("ConfigMap", [])}
    secrets = {d["metadata"]["name"]: d for d in by_kind.get("Secret", [])} if "Secret" in by_kind else None
    pdbs = by_kind.get("PodDisruptionBudget", [])
    deployments = by_kind.get("Deployment", [])

    # ConfigMaps: settings only.
    for cm in configmaps.values():
        for key, value in (cm.get("data") or {}).items():
            if SECRETISH_NAME.search(key) and key not in NOT_SECRET_NAMES:
                report.fail(ident(cm), f"key {key} names a secret: secrets go in Secrets")
            if SECRETISH_VALUE.search(str(value)):
                report.fail(ident(cm), f"value of {key} looks like a key, a hash or a certificate")
        if cm.get("binaryData"):
            report.fail(ident(cm), "binaryData in a ConfigMap")

    # Secrets the repository renders: placeholders only.
    for s in (secrets or {}).values():
        for key, value in (s.get("data") or {}).items():
            text = base64.b64decode(value).decode("utf-8", "replace")
            if SECRETISH_VALUE.search(text):
                report.fail(ident(s), f"{key} holds what looks like a real secret: never commit one")
        for key, value in (s.get("stringData") or {}).items():
            if SECRETISH_VALUE.search(value):
                report.fail(ident(s), f"{key} holds what looks like a real secret: never commit one")

    programs = set()
    for d in deployments:
        obj = ident(d)
        tmpl = d["spec"]["template"]
        pod = tmpl["spec"]
        labels = tmpl["metadata"].get("labels", {})
        ann = tmpl["metadata"].get("annotations", {})
        for c, env in pod_checks(obj, pod, report, configmaps, secrets, known):
            program = (c.get("command") or [""])[0]
            programs.add(program)
            if program not in LISTEN:
                report.fail(obj, f"runs {program!r}, not one of {sorted(LISTEN)}")
                continue
            ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            listen = env.get(LISTEN[program]) or ""
            m = re.fullmatch(r"(?:0\.0\.0\.0|\[::\]):(\d+)", listen)
            if not m:
                report.fail(obj, f"{LISTEN[program]}={listen!r}: must listen on every address (0.0.0.0:PORT), or probes and scrapes cannot reach it")
                continue
            port = int(m.group(1))
            if port not in ports.values():
                report.fail(obj, f"{LISTEN[program]} port {port} is not a containerPort")
            for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
                get = c.get(probe, {}).get("httpGet", {})
                if get.get("path") != path:
                    report.fail(obj, f"{probe} must GET {path}")
                target = ports.get(get.get("port"), get.get("port"))
                if target != port:
                    report.fail(obj, f"{probe} port {get.get('port')} is not the listen port {port}")
            if ann.get("prometheus.io/scrape") != "true":
                report.fail(obj, "annotation prometheus.io/scrape: \"true\" missing")
            if ann.get("prometheus.io/port") != str(port):
                report.fail(obj, f"annotation prometheus.io/port must be {port}")
            if ann.get("prometheus.io/path") != "/metrics":
                report.fail(obj, "annotation prometheus.io/path: /metrics missing")
        if labels.get("app.kubernetes.io/name") != d["metadata"]["name"]:
            report.fail(obj, "pod label app.kubernetes.io/name must be the Deployment's name (the scrape job)")
        covering = [
            p for p in pdbs
            if p["metadata"].get("namespace") == d["metadata"].get("namespace")
            and all(labels.get(k) == v for k, v in p["spec"]["selector"].get("matchLabels", {}).items())
        ]
        if not covering:
            report.fail(obj, "no PodDisruptionBudget selects its pods")
        for p in covering:
            spec = p["spec"]
            replicas = d["spec"].get("replicas", 1)
            if "minAvailable" in spec and int(spec["minAvailable"]) >= replicas:
                report.fail(ident(p), f"minAvailable {spec['minAvailable']} with {replicas} replicas blocks every eviction")
            if "maxUnavailable" in spec and int(spec["maxUnavailable"]) < 1:
                report.fail(ident(p), "maxUnavailable 0 blocks every eviction")
    missing = set(LISTEN) - programs
    if missing:
        report.fail("Deployments", f"no Deployment runs {sorted(missing)}")

    for s in by_kind.get("Service", []):
        sel = s["spec"].get("selector", {})
        if not any(all(d["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in sel.items())
                   for d in deployments):
            report.fail(ident(s), f"selects no Deployment's pods ({sel})")

    jobs = by_kind.get("Job", [])
    commands = []
    for j in jobs:
        for c, _env in pod_checks(ident(j), j["spec"]["template"]["spec"], report, configmaps, secrets, known):
            commands.append(c.get("command"))
    if ["exatom-admin", "migrate"] not in commands:
        report.fail("Jobs", "no Job runs exatom-admin migrate")

    topics = by_kind.get("KafkaTopic", [])
    if topics:
        seen = {}
        for t in topics:
            spec = t["spec"]
            topic = spec.get("topicName")
            seen[topic] = spec
            if topic not in TOPICS:
                report.fail(ident(t), f"topic {topic} is not one of README's {sorted(TOPICS)}")
                continue
            retention, single = TOPICS[topic]
            config = spec.get("config", {})
            if config.get("retention.ms") != retention:
                report.fail(ident(t), f"retention.ms {config.get('retention.ms')}, README says {retention}")
            if single and spec.get("partitions") != 1:
                report.fail(ident(t), "the salts topic has one partition (every anonymizer reads the salts in one order)")
            isr = config.get("min.insync.replicas", 1)
            if isr >= spec.get("replicas", 1) and spec.get("replicas", 1) > 1:
                report.fail(ident(t), f"min.insync.replicas {isr} leaves no broker to lose with {spec['replicas']} replicas")
        for topic in sorted(set(TOPICS) - set(seen)):
            report.fail("KafkaTopics", f"{topic} missing")
        for d in deployments:
            topic = READS.get(d["metadata"]["name"])
            if topic in seen and d["spec"].get("replicas", 1) > seen[topic].get("partitions", 0):
                report.fail(ident(d), f"{d['spec']['replicas']} replicas read {topic}'s {seen[topic]['partitions']} partitions: some would stand idle")

    summary = ", ".join(f"{len(v)} {k}" for k, v in sorted(by_kind.items()))
    return report, summary


def find(docs, kind, name):
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(name))


def container(docs, name):
    return find(docs, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]


def configmap(docs):
    return find(docs, "ConfigMap", "exatom-config")["data"]


# Each rule broken once on the example's rendering: the check must name it.
MUTATIONS = [
    ("readiness on /healthz", lambda d: container(d, "exatom-collector")["readinessProbe"]["httpGet"].update(path="/healthz"), "readinessProbe must GET /readyz"),
    ("no CPU request", lambda d: container(d, "exatom-sessionizer")["resources"]["requests"].pop("cpu"), "resources.requests.cpu missing"),
    ("no scrape annotation", lambda d: find(d, "Deployment", "exatom-anonymizer")["spec"]["template"]["metadata"]["annotations"].pop("prometheus.io/scrape"), "prometheus.io/scrape"),
    ("scrape port not the listen port", lambda d: find(d, "Deployment", "exatom-console")["spec"]["template"]["metadata"]["annotations"].update({"prometheus.io/port": "9999"}), "prometheus.io/port must be 8090"),
    ("a key's name in the ConfigMap", lambda d: configmap(d).update(EXATOM_TRANSACTION_KEY="x"), "names a secret"),
    ("a key's value in the ConfigMap", lambda d: configmap(d).update(EXATOM_CLICKHOUSE_DATABASE="ab" * 32), "looks like a key"),
    ("long salt retention", lambda d: configmap(d).update(EXATOM_ALLOW_LONG_SALT_RETENTION="true"), "must stay false in production"),
    ("no PDB", lambda d: d.remove(find(d, "PodDisruptionBudget", "exatom-aggregator")), "no PodDisruptionBudget"),
    ("a PDB that lets none go", lambda d: find(d, "PodDisruptionBudget", "exatom-collector")["spec"].update(maxUnavailable=0), "blocks every eviction"),
    ("a Service selecting nothing", lambda d: find(d, "Service", "exatom-console")["spec"]["selector"].update({"app.kubernetes.io/name": "console"}), "selects no Deployment"),
    ("an object without its component label", lambda d: find(d, "Secret", "exatom-sites")["metadata"]["labels"].pop("app.kubernetes.io/component"), "app.kubernetes.io/component missing"),
    ("service links", lambda d: find(d, "Deployment", "exatom-aggregator")["spec"]["template"]["spec"].update(enableServiceLinks=True), "enableServiceLinks"),
    ("a misspelt setting", lambda d: container(d, "exatom-sessionizer")["env"].append({"name": "EXATOM_LATENESS_SM", "value": "1"}), "EXATOM_LATENESS_SM is not a setting"),
    ("listening on loopback", lambda d: container(d, "exatom-sessionizer")["env"][0].update(value="127.0.0.1:9103"), "must listen on every address"),
    ("writable root", lambda d: container(d, "exatom-console")["securityContext"].update(readOnlyRootFilesystem=False), "readOnlyRootFilesystem"),
    ("capabilities kept", lambda d: container(d, "exatom-collector")["securityContext"].pop("capabilities"), "capabilities must drop ALL"),
    ("Secret by subPath", lambda d: container(d, "exatom-collector")["volumeMounts"][0].update(subPath="sites.toml"), "subPath"),
    ("a real key in a Secret", lambda d: find(d, "Secret", "exatom-transaction-key")["data"].update({"transaction.key": base64.b64encode(b"0f" * 32).decode()}), "real secret"),
    ("a missing Secret", lambda d: d.remove(find(d, "Secret", "exatom-clickhouse")), "is not rendered"),
    ("salts on 3 partitions", lambda d: find(d, "KafkaTopic", "exatom-salts")["spec"].update(partitions=3), "one partition"),
    ("raw kept a week", lambda d: find(d, "KafkaTopic", "exatom-raw")["spec"]["config"].update({"retention.ms": 7 * 24 * HOUR_MS}), "retention.ms"),
    ("a topic missing", lambda d: d.remove(find(d, "KafkaTopic", "exatom-dlq")), "exatom.dlq missing"),
    ("more sessionizers than partitions", lambda d: find(d, "Deployment", "exatom-sessionizer")["spec"].update(replicas=13), "stand idle"),
    ("compacted topic", lambda d: find(d, "KafkaTopic", "exatom-anon")["spec"]["config"].update({"cleanup.policy": "compact"}), "KafkaTopic schema"),
    ("a KafkaTopic field misspelt", lambda d: find(d, "KafkaTopic", "exatom-anon")["spec"].update(partiton=3), "KafkaTopic schema"),
    ("a Deployment field misspelt", lambda d: container(d, "exatom-collector").update(readinesProbe={}), "schema"),
    ("no migrations Job", lambda d: d.remove(find(d, "Job", "exatom-migrate")), "exatom-admin migrate"),
]


def self_test(path, known):
    """Breaks each rule once on a clean rendering; each must be caught, by its own message."""
    import copy
    clean = [d for d in yaml.safe_load_all(pathlib.Path(path).read_text()) if d]
    missed = []
    for what, mutate, expected in MUTATIONS:
        docs = copy.deepcopy(clean)
        mutate(docs)
        report, _ = check("self-test", docs, known)
        if not any(expected in e for e in report.errors):
            missed.append(f"{what}: expected {expected!r}, got {report.errors}")
    for m in missed:
        print("FAIL check.py missed", m)
    if not missed:
        print(f"ok   check.py catches each of {len(MUTATIONS)} broken rules on the example")
    return 1 if missed else 0


def main(argv):
    known = settings()
    if argv[:1] == ["--self-test"]:
        return self_test(argv[1], known)
    failed = False
    for arg in argv:
        name, _, path = arg.partition("=")
        docs = [d for d in yaml.safe_load_all(pathlib.Path(path).read_text()) if d]
        report, summary = check(name, docs, known)
        if report.errors:
            failed = True
            for e in report.errors:
                print("FAIL", e)
        else:
            print(f"ok   {name}: {summary}: schemas (Kubernetes {K8S_VERSION} strict, KafkaTopic) and rules hold")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
