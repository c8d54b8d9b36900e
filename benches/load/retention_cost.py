#!/usr/bin/env python3
"""What one retention pass of the local broker costs, as the topics grow.

    benches/load/retention_cost.py TANSU_DB [SIZES...]

Copies TANSU_DB (the SQLite file of a stopped or running tansu; read through SQLite's
backup API), grows the copy's `exatom.raw` to each of SIZES records (default 1e6 4e6) by
repeating the records it holds under later offsets and times, and times tansu's retention statement
(`lite/policy_delete.sql`), as published and as patched (deploy/local/tansu), in two
cases:

  keep    nothing is past retention (the usual pass, every 30 s);
  expire  the oldest tenth of `exatom.raw` is past its 24 h.

Each statement runs in a transaction that is rolled back, three times; the median is
printed. SQLite here is Python's (the broker links libsql, the same engine and planner).
"""

import os
import shutil
import sqlite3
import statistics
import sys
import tarfile
import tempfile
import time

TANSU_HOME = os.environ.get(
    "TANSU_HOME",
    os.path.join(os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo")), "exatom-tansu"),
)
RAW = "exatom.raw"
RAW_RETENTION_MS = 24 * 3600 * 1000


def statements():
    """The published statement (from the crate) and the patched one (from the source tree
    deploy/local/tansu/build.sh patched and built)."""
    name = "tansu-storage-0.6.0/src/lite/policy_delete.sql"
    with tarfile.open(os.path.join(TANSU_HOME, "src", "tansu-storage-0.6.0.crate")) as tar:
        original = tar.extractfile(name).read().decode()
    with open(os.path.join(TANSU_HOME, "src", name)) as f:
        patched = f.read()
    if patched == original:
        sys.exit(f"{TANSU_HOME}/src/{name} is not patched: run deploy/local/tansu/build.sh")
    return {"published": original, "patched": patched}


def raw_partitions(db):
    return [row[0] for row in db.execute(
        "select tp.id from topition tp join topic t on t.id = tp.topic where t.name = ?", (RAW,))]


def grow(db, target):
    """Repeats exatom.raw's records under new offsets until it holds `target` records."""
    columns = [row[1] for row in db.execute("pragma table_info(record)")]
    partitions = raw_partitions(db)
    held = lambda: db.execute(
        f"select count(*) from record where topition in ({','.join('?' * len(partitions))})",
        partitions).fetchone()[0]
    while (n := held()) < target:
        for p in partitions:
            top, span = db.execute(
                "select max(offset_id) + 1, max(timestamp) - min(timestamp) + 1 from record "
                "where topition = ?", (p,)).fetchone()
            # Later offsets, later times: a copy continues the log as traffic would.
            shifted = {"offset_id": f"offset_id + {top}", "timestamp": f"timestamp + {span}"}
            select = ", ".join(shifted.get(c, c) for c in columns)
            want = max(1, (target - n) // len(partitions))
            db.execute(
                f"insert into record ({', '.join(columns)}) select {select} from record "
                f"where topition = ? order by offset_id limit {want}", (p,))
        db.commit()
    return held()


def timed(db, sql, now):
    cluster = db.execute("select name from cluster").fetchone()[0]
    runs, deleted = [], 0
    for _ in range(3):
        db.execute("begin")
        before = db.total_changes
        start = time.perf_counter()
        db.execute(sql, {"1": cluster, "2": now, "3": 7 * 24 * 3600 * 1000})
        runs.append(time.perf_counter() - start)
        deleted = db.total_changes - before
        db.execute("rollback")
    return statistics.median(runs) * 1000, deleted


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sizes = [int(float(s)) for s in sys.argv[2:]] or [1_000_000, 4_000_000]
    sql = statements()
    work = tempfile.mkdtemp(prefix="retention-")
    copy = os.path.join(work, "tansu.db")
    with sqlite3.connect(sys.argv[1]) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    db = sqlite3.connect(copy, isolation_level=None)
    db.execute("pragma foreign_keys = on")
    print(f"{'records in exatom.raw':>22} {'all records':>12} {'case':>7} {'deleted':>9} "
          f"{'published ms':>13} {'patched ms':>11}")
    for size in sizes:
        db.isolation_level = ""
        raw = grow(db, size)
        db.isolation_level = None
        total = db.execute("select count(*) from record").fetchone()[0]
        partitions = raw_partitions(db)
        marks = ",".join("?" * len(partitions))
        newest = db.execute("select max(timestamp) from record").fetchone()[0]
        tenth = db.execute(
            f"select timestamp from record where topition in ({marks}) order by timestamp "
            f"limit 1 offset ?", (*partitions, raw // 10)).fetchone()[0]
        for case, now in (("keep", newest), ("expire", tenth + RAW_RETENTION_MS)):
            published, gone = timed(db, sql["published"], now)
            patched, gone_patched = timed(db, sql["patched"], now)
            print(f"{raw:>22} {total:>12} {case:>7} {gone_patched:>9} {published:>13.1f} {patched:>11.1f}"
                  + ("" if gone == gone_patched else f"  (published deletes {gone})"))
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
