"""The ClickHouse DDL as a modern server gets it, run on the real modern engine (chdb-core,
in-process): every statement is accepted, every view answers; on every table of event data
a row 100 days old is gone after a merge while a fresh one stays, and on every table of
reporting data a row 400 days old stays (no TTL); a site's rows leave every table with the
deletion `exatom-admin delete-site` runs; and the aggregator's rollup recomputations and the
query pack give the expected figures — the same after a second recomputation, as after a
session delivered twice.

usage: modern_engine.py path/to/exatom-admin
"""
import datetime
import pathlib
import re
import subprocess
import sys
import tempfile

SCHEMAS = pathlib.Path(__file__).resolve().parent.parent / "schemas" / "clickhouse"


def bind(sql: str, params: dict) -> str:
    """Renders `{name:Type}` parameters as literals, as the aggregator does for 18.16."""

    def literal(value):
        if isinstance(value, datetime.date):
            return f"toDate('{value.isoformat()}')"
        if isinstance(value, (list, tuple)):
            return "(" + ", ".join(literal(v) for v in value) + ")"
        return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"

    code = "\n".join(l for l in sql.splitlines() if not l.lstrip().startswith("--"))
    return re.sub(r"\{(\w+):[^}]+\}", lambda m: literal(params[m.group(1)]), code).strip().rstrip(";")


def rows(db, sql: str) -> str:
    return str(db.query(sql, "TSV")).strip("\n")


def rollups_and_query_pack(db) -> list:
    """Per-session rows of one site and day, recomputed into the rollups twice."""
    failures = []
    today = datetime.date.fromisoformat(rows(db, "SELECT toString(today())"))
    db.query("""INSERT INTO exatom.form_sessions (site, day, session_id, form_key, device_class, viewed, started,
        submitted, converted, has_start_hesitation, start_hesitation_ms, has_duration_to_conversion,
        duration_to_conversion_ms, version) VALUES
        ('M', today(), 's1', 'f', 'desktop', 1, 1, 1, 1, 1, 1000, 1, 5000, 1),
        ('M', today(), 's2', 'f', 'mobile', 1, 1, 0, 0, 1, 3000, 0, 0, 1),
        ('M', today(), 's3', 'f', 'mobile', 1, 0, 0, 0, 0, 0, 0, 0, 1)""")
    db.query("""INSERT INTO exatom.field_interactions (site, day, session_id, form_key, field_key, device_class,
        time_spent_ms, has_hesitation, hesitation_ms, abandoned, version) VALUES
        ('M', today(), 's1', 'f', 'email', 'desktop', 1000, 1, 200, 0, 1),
        ('M', today(), 's2', 'f', 'email', 'mobile', 3000, 1, 400, 1, 1)""")
    db.query("""INSERT INTO exatom.conversions (site, day, session_id, event_id, form_key, device_class,
        transaction_id, revenue, event_time_ms, counts, version) VALUES
        ('M', today(), 's1', 'e1', 'f', 'desktop', 'T1', 10, 100, 1, 1),
        ('M', today(), 's3', 'e3', '', 'mobile', 'T1', 10, 200, 1, 1)""")
    db.query("""INSERT INTO exatom.tooltip_events (site, day, session_id, event_id, trigger, action, version) VALUES
        ('M', today(), 's1', 't1', 'Trig', 'impression', 1), ('M', today(), 's1', 't2', 'Trig', 'click', 1)""")
    keys = {"form": ["f"], "conversion": ["f", ""], "tooltips": ["Trig"]}
    for attempt in (1, 2):
        for template in sorted((SCHEMAS / "rollups").glob("*.sql")):
            group = "conversion" if "conversion" in template.name else "tooltips" if "tooltip" in template.name else "form"
            db.query(bind(template.read_text(), {"site": "M", "day": today, "keys": keys[group]}))
        got = [
            rows(db, "SELECT * EXCEPT (site, day) FROM exatom.v_form_daily WHERE site = 'M'"),
            rows(db, "SELECT * EXCEPT (site, day) FROM exatom.v_field_daily WHERE site = 'M'"),
            rows(db, "SELECT * EXCEPT (site, day) FROM exatom.v_conversions_daily WHERE site = 'M' ORDER BY form"),
            rows(db, "SELECT * EXCEPT (site, day) FROM exatom.v_tooltips_daily WHERE site = 'M'"),
        ]
        want = [
            "f\t3\t2\t1\t1\t1\t1\t5\t3000",
            "f\temail\t2\t1\t2000\t400\t0\t0\t0",
            "\t1\t0\nf\t1\t10",
            "Trig\t1\t1\t0",
        ]
        if got != want:
            failures.append(f"views after recomputation {attempt}: {got} != {want}")
    params = {"site": "M", "form": "f", "from": today, "to": today}
    answers = {
        "form_funnel": "f\t3\t2\t1\t1\t1\t1\t0.6667\t0.5",
        "field_dropoff": "email\t1\t2\t0.5",
        "field_hesitation": "email\t2\t400\t2000\t0\t0\t0",
        "conversion_attribution": "f\t1\t10\n\t1\t0",
        "trends_daily": f"{today.isoformat()}\t3\t2\t1\t1\t3000\t10",
        "by_device_class": "desktop\t1\t1\t1\t1\t1000\t10\nmobile\t2\t1\t0\t0\t3000\t0",
    }
    for query in sorted((SCHEMAS / "queries").glob("*.sql")):
        got = rows(db, bind(query.read_text(), params))
        if got != answers.get(query.stem):
            failures.append(f"query pack {query.stem}: {got!r} != {answers.get(query.stem)!r}")
    return failures

from chdb import session


def main() -> int:
    admin = sys.argv[1]
    ddl = subprocess.run([admin, "render-ddl", "modern"], check=True, capture_output=True, text=True).stdout
    statements = [s.strip().rstrip(";") for s in ddl.split(";\n") if s.strip()]
    classes = subprocess.run([admin, "retention-classes"], check=True, capture_output=True, text=True).stdout
    class_of = dict(reversed(line.split("\t")) for line in classes.splitlines())
    with tempfile.TemporaryDirectory() as path:
        db = session.Session(path)
        db.query("CREATE DATABASE IF NOT EXISTS exatom")
        db.query("USE exatom")
        for statement in statements:
            db.query(statement)
        tables = [
            line.strip('"')
            for line in str(db.query(
                "SELECT name FROM system.tables WHERE database = 'exatom' AND engine LIKE '%MergeTree%'",
                "CSV",
            )).split()
        ]
        views = [
            line.strip('"')
            for line in str(db.query(
                "SELECT name FROM system.tables WHERE database = 'exatom' AND engine = 'View'", "CSV"
            )).split()
        ]
        assert tables and views, (tables, views)
        failures = []
        # The ledger is made by `exatom-admin migrate`, not by the rendered DDL.
        classified = sorted(t for t in class_of if t != "schema_migrations")
        if sorted(tables) != classified:
            failures.append(f"tables {sorted(tables)} != classified {classified}")
        data_tables = [t for t in tables if class_of.get(t) in ("event_data", "reporting_data")]
        for table in data_tables:
            ttl = str(db.query(f"SELECT engine_full FROM system.tables WHERE database='exatom' AND name='{table}'", "CSV"))
            kept = class_of[table] == "reporting_data"
            if kept == ("TTL" in ttl):
                failures.append(f"{table} ({class_of[table]}): TTL {'present' if kept else 'missing'}: {ttl}")
                continue
            db.query(f"INSERT INTO exatom.{table} (site, day) VALUES ('A', today() - 400), ('A', today() - 100), ('A', today())")
            db.query(f"OPTIMIZE TABLE exatom.{table} FINAL")
            left = str(db.query(f"SELECT toString(groupArray(day)) FROM (SELECT day FROM exatom.{table} ORDER BY day)", "CSV")).strip()
            expected = "today() - 400, today() - 100, today()" if kept else "today()"
            want = str(db.query(f"SELECT toString([{expected}])", "CSV")).strip()
            if left != want:
                failures.append(f"{table}: after a merge holds {left}, expected {want}")
        # A site leaves: the statement `exatom-admin delete-site` runs on every data table.
        for table in data_tables:
            db.query(f"INSERT INTO exatom.{table} (site, day) VALUES ('GONE', today()), ('STAYS', today())")
            db.query(f"ALTER TABLE exatom.{table} DELETE WHERE site = 'GONE' SETTINGS mutations_sync = 1")
            left = rows(db, f"SELECT groupArray(site) FROM exatom.{table} WHERE site IN ('GONE', 'STAYS')")
            if left != "['STAYS']":
                failures.append(f"{table}: after deleting site GONE holds {left}")
            db.query(f"ALTER TABLE exatom.{table} DELETE WHERE site IN ('STAYS', 'A') SETTINGS mutations_sync = 1")
        for view in views:
            db.query(f"SELECT * FROM exatom.{view} LIMIT 1")
        failures += rollups_and_query_pack(db)
        db.close()
    if failures:
        print("modern engine: FAILED\n" + "\n".join(failures))
        return 1
    print(f"modern engine: {len(data_tables)} tables keep their retention class and lose a deleted site's "
          f"rows, {len(views)} views answer, rollups and query pack give the expected figures twice")
    print(f"{2 * len(data_tables) + 3} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
