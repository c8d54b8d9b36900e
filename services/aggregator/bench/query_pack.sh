#!/usr/bin/env bash
# Times every query of schemas/clickhouse/queries/ on a year of synthetic daily rollups for
# 100 forms (every form every day in 18 segments: 3 device classes x 3 countries x 2
# browsers; 5 fields per form), in a database of its own (`exatom_bench`, dropped and rebuilt by `exatom-admin migrate`).
#   services/aggregator/bench/query_pack.sh            # against $EXATOM_CLICKHOUSE_URL
# Prints, per query, the median and max of 11 runs over HTTP (what a dashboard sees), and
# two ceilings on the same rollups: `SELECT count()` and a full `sum()` scan.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
URL=${EXATOM_CLICKHOUSE_URL:-http://127.0.0.1:8123}
BIN=${STACK_BIN:-$ROOT/target/release}
DB=exatom_bench
RUNS=11

q() { curl -fsS "$URL/?database=$DB" --data-binary "$1"; }

curl -fsS "$URL/" --data-binary "DROP DATABASE IF EXISTS $DB" >/dev/null
EXATOM_CLICKHOUSE_URL=$URL EXATOM_CLICKHOUSE_DATABASE=$DB "$BIN/exatom-admin" migrate >&2

# n = day + 365 * (form + 100 * segment). A median state holds one value per session that had
# one, as in production: 20 per segment or field row (at most its starts or interactions,
# 20-29), 360 per form or field row without segments (18 segments).
SEGMENT="arrayElement(['desktop', 'mobile', 'tablet'], intDiv(n, 36500) % 3 + 1),
    arrayElement(['NL', 'DE', 'FR'], intDiv(n, 109500) % 3 + 1),
    arrayElement(['Chrome', 'Firefox'], intDiv(n, 328500) % 2 + 1)"
DAY="today() - 364 + n % 365"
FORM="concat('form_', toString(intDiv(n, 365) % 100))"
start=$(date +%s.%N)
q "INSERT INTO form_segment_daily SELECT 'BENCH', $DAY, $FORM, $SEGMENT,
    40 + n % 20, 20 + n % 10, 10 + n % 5, 5 + n % 3, 5 + n % 3, (5 + n % 3) * 60000, state, 40 + n % 20
  FROM (SELECT intDiv(number, 20) AS n, quantileExactState(toInt64(cityHash64(number) % 20000)) AS state
        FROM numbers(657000 * 20) GROUP BY n)"
q "INSERT INTO form_daily SELECT 'BENCH', $DAY, $FORM,
    18 * (40 + n % 20), 18 * (20 + n % 10), 18 * (10 + n % 5), 18 * (5 + n % 3), 18 * (5 + n % 3),
    18 * (5 + n % 3) * 60000, state, 18 * (40 + n % 20)
  FROM (SELECT intDiv(number, 360) AS n, quantileExactState(toInt64(cityHash64(number) % 20000)) AS state
        FROM numbers(36500 * 360) GROUP BY n)"
q "INSERT INTO field_daily SELECT 'BENCH', $DAY, $FORM, concat('field_', toString(f)),
    18 * (20 + n % 10), 18 * (n % 4), 18 * (20 + n % 10) * 3000, state, 18 * (n % 3), 18 * (n % 2), 18 * (n % 5), 18 * (20 + n % 10)
  FROM (SELECT intDiv(number, 1800) AS n, intDiv(number, 360) % 5 AS f,
               quantileExactState(toInt64(cityHash64(number) % 8000)) AS state
        FROM numbers(36500 * 1800) GROUP BY n, f)"
q "INSERT INTO field_segment_daily SELECT 'BENCH', $DAY, $FORM, concat('field_', toString(f)), $SEGMENT,
    20 + n % 10, n % 4, (20 + n % 10) * 3000, state, n % 3, n % 2, n % 5, 20 + n % 10
  FROM (SELECT intDiv(number, 100) AS n, intDiv(number, 20) % 5 AS f,
               quantileExactState(toInt64(cityHash64(number) % 8000)) AS state
        FROM numbers(657000 * 100) GROUP BY n, f)"
q "INSERT INTO conversion_segment_daily SELECT 'BENCH', $DAY, if(intDiv(n, 365) % 100 = 99, '', $FORM), $SEGMENT,
    5 + n % 3, (5 + n % 3) * 19.5, 5 + n % 3
  FROM (SELECT number AS n FROM numbers(657000))"
q "INSERT INTO conversions_daily SELECT 'BENCH', $DAY, if(intDiv(n, 365) % 100 = 99, '', $FORM),
    18 * (5 + n % 3), 18 * (5 + n % 3) * 19.5, 18 * (5 + n % 3)
  FROM (SELECT number AS n FROM numbers(36500))"
q "INSERT INTO tooltips_daily SELECT 'BENCH', $DAY, concat('Trigger', toString(intDiv(n, 365) % 5)), $SEGMENT,
    30, 5, 10, 45
  FROM (SELECT number AS n FROM numbers(657000) WHERE intDiv(n, 365) % 100 < 5)"
for t in form_daily form_segment_daily field_daily field_segment_daily conversions_daily conversion_segment_daily tooltips_daily; do q "OPTIMIZE TABLE $t FINAL" >/dev/null; done
printf 'loaded in %.0f s: ' "$(echo "$(date +%s.%N) - $start" | bc)"
q "SELECT concat(toString((SELECT count() FROM form_daily)), ' form_daily rows, ',
  toString((SELECT count() FROM form_segment_daily)), ' form_segment_daily rows, ',
  toString((SELECT count() FROM field_daily)), ' field_daily rows, ',
  toString((SELECT count() FROM field_segment_daily)), ' field_segment_daily rows, ',
  toString((SELECT uniqExact(day) FROM form_daily)), ' days')"

render() {
  grep -v '^--' "$1" | sed -e "s/{site:String}/'BENCH'/g" -e "s/{form:String}/'form_42'/g" \
    -e "s/{from:Date}/(today() - 364)/g" -e "s/{to:Date}/today()/g"
}
# time NAME SQL: median and max wall time of $RUNS runs, in ms.
time_query() {
  local name=$1 sql=$2 times=()
  q "$sql" >/dev/null
  for _ in $(seq $RUNS); do
    times+=("$(curl -fsS -o /dev/null -w '%{time_total}' "$URL/?database=$DB" --data-binary "$sql")")
  done
  printf '%s\n' "${times[@]}" | sort -n | awk -v name="$name" -v rows="$(q "$sql" | wc -l)" \
    '{ t[NR] = $1 * 1000 } END { printf "%-26s median %6.1f ms  max %6.1f ms  (%s rows)\n", name, t[int((NR + 1) / 2)], t[NR], rows }'
}
for f in "$ROOT"/schemas/clickhouse/queries/*.sql; do
  time_query "$(basename "$f" .sql)" "$(render "$f")"
done
time_query "ceiling: count()" "SELECT count() FROM form_daily WHERE site = 'BENCH'"
time_query "ceiling: sum() scan" "SELECT sum(views), sum(starts) FROM form_daily WHERE site = 'BENCH'"
time_query "ceiling: segment scan" "SELECT sum(views) FROM form_segment_daily WHERE site = 'BENCH'"
time_query "ceiling: segment FINAL" "SELECT sum(views) FROM form_segment_daily FINAL WHERE site = 'BENCH'"
