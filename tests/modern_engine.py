"""The ClickHouse DDL as a modern server gets it, run on the real modern engine (chdb-core,
in-process): every statement is accepted, every view answers, and on every table a row 100
days old is gone after a merge while a fresh one stays.

usage: modern_engine.py path/to/exatom-admin
"""
import subprocess
import sys
import tempfile

from chdb import session


def main() -> int:
    admin = sys.argv[1]
    ddl = subprocess.run([admin, "render-ddl", "modern"], check=True, capture_output=True, text=True).stdout
    statements = [s.strip().rstrip(";") for s in ddl.split(";\n") if s.strip()]
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
        for table in tables:
            ttl = str(db.query(f"SELECT engine_full FROM system.tables WHERE database='exatom' AND name='{table}'", "CSV"))
            if "TTL day + toIntervalDay(90)" not in ttl:
                failures.append(f"{table}: no 90-day TTL")
                continue
            db.query(f"INSERT INTO exatom.{table} (day) VALUES (today() - 100), (today())")
            db.query(f"OPTIMIZE TABLE exatom.{table} FINAL")
            left = str(db.query(f"SELECT toString(groupArray(day)) FROM exatom.{table}", "CSV")).strip()
            today = str(db.query("SELECT toString([today()])", "CSV")).strip()
            if left != today:
                failures.append(f"{table}: after a merge holds {left}, expected {today}")
        for view in views:
            db.query(f"SELECT * FROM exatom.{view} LIMIT 1")
        db.close()
    if failures:
        print("modern engine: FAILED\n" + "\n".join(failures))
        return 1
    print(f"modern engine: {len(tables)} tables expire 100-day-old rows, {len(views)} views answer")
    print(f"{len(tables) + 1} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
