#!/usr/bin/env python3
"""Prints the alerts of a Prometheus as they change, with the time since the start.

    alert_timeline.py PROMETHEUS_URL [--settle SECONDS]

Polls /api/v1/alerts every 2 s until SIGTERM, or, with --settle, also stops once no alert
has been pending or firing for SECONDS after at least one fired. Each line:
    +  63.0 s  firing    ExatomConsumerBehind  job=exatom-sessionizer topic=exatom.anon  value=41.2
and `resolved` when an alert leaves the list. Standard library only.
"""
import json
import signal
import sys
import time
import urllib.request

url = sys.argv[1].rstrip("/") + "/api/v1/alerts"
settle = float(sys.argv[sys.argv.index("--settle") + 1]) if "--settle" in sys.argv else None
start = time.monotonic()
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))


def key(alert):
    labels = {k: v for k, v in alert["labels"].items() if k not in ("alertname", "severity", "instance")}
    return alert["labels"]["alertname"], " ".join(f"{k}={v}" for k, v in sorted(labels.items()))


def say(state, name, labels, value=""):
    print(f"+{time.monotonic() - start:7.1f} s  {state:<9} {name:<28} {labels}  {value}".rstrip(), flush=True)


seen, fired, quiet_since = {}, False, None
while True:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            alerts = json.load(r)["data"]["alerts"]
    except OSError as e:
        print(f"+{time.monotonic() - start:7.1f} s  (Prometheus: {e})", flush=True)
        alerts = []
    now = {}
    for a in alerts:
        now[key(a)] = a
    for k, a in now.items():
        if seen.get(k) != a["state"]:
            value = a.get("value", "")
            try:
                value = f"value={float(value):.1f}"
            except ValueError:
                value = ""
            say(a["state"], *k, value)
            fired |= a["state"] == "firing"
    for k in seen.keys() - now.keys():
        say("resolved", *k)
    seen = {k: a["state"] for k, a in now.items()}
    if settle is not None and fired:
        if seen:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= settle:
            say("quiet", "every alert resolved", f"for {settle:.0f} s")
            break
    time.sleep(2)
