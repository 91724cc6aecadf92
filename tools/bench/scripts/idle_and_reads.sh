#!/bin/bash
# Issue 19: idle CPU of `work` and `status` time with 100k finished jobs against an empty queue,
# and `show --json` of a 100k-anime franchise against sqlite3 running the same queries.
# Needs release builds: cargo build --release -p franchise -p fake-anilist. Prints its figures.
set -u
B=${B:-$(cd "$(dirname "$0")/../../.." && pwd)/target/release}
W=${W:-/tmp/m19}
rm -rf "$W/full" "$W/empty"; mkdir -p "$W/full" "$W/empty"
$B/fake-anilist --franchises 0 --giant 100000:25 --dead-rate 0 --adult-rate 0 --cross-links 0 --no-rate-limit --latency-ms 0 --jitter-ms 0 > $W/fake.log 2>&1 &
FAKE=$!
for i in $(seq 1 300); do grep -q "serving" $W/fake.log && grep -q " root " $W/fake.log && break; sleep 1; done
URL=$(grep -o "http://127.0.0.1:[0-9]*/" $W/fake.log | head -1)
ROOT=$(grep -o "root [0-9]*" $W/fake.log | head -1 | cut -d' ' -f2)
echo "fake $URL root $ROOT"
export FRANCHISE_ANILIST__URL=$URL FRANCHISE_ANILIST__BUDGET_PER_MINUTE=1000000 FRANCHISE_ANILIST__MIN_SPACING_MS=0 FRANCHISE_ANILIST__WALK_LEVELS=1 FRANCHISE_WORKERS=500 FRANCHISE_IMPORT__MAX_ITEMS=1000000 FRANCHISE_IMPORT__MAX_DEPTH=1000
t0=$(date +%s.%N)
$B/franchise --data-dir $W/full import $ROOT --wait > $W/import.log 2>&1
echo "import exit $? in $(echo "$(date +%s.%N) - $t0" | bc) s: $(tail -1 $W/import.log)"
kill $FAKE
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
$B/franchise --data-dir $W/full work > $W/work-full.log 2>&1 & P1=$!
$B/franchise --data-dir $W/empty work > $W/work-empty.log 2>&1 & P2=$!
sleep 10
a1=$(cpu $P1); a2=$(cpu $P2); sleep 60; b1=$(cpu $P1); b2=$(cpu $P2)
tck=$(getconf CLK_TCK)
echo "idle work, CPU seconds over 60 s: 100k finished jobs $(echo "scale=2; ($b1-$a1)/$tck" | bc), empty queue $(echo "scale=2; ($b2-$a2)/$tck" | bc)"
for d in full empty; do
  ts=""
  for i in 1 2 3 4 5; do s=$(date +%s%N); $B/franchise --data-dir $W/$d status > /dev/null 2>&1; e=$(date +%s%N); ts="$ts $(( (e-s)/1000000 ))"; done
  echo "status ms ($d, work running):$ts"
done
kill -INT $P1 $P2; wait $P1 $P2 2>/dev/null
echo "jobs in queue.redb: $(ls -la $W/full/queue.redb | awk '{print $5}') bytes"
for i in 1 2 3; do /usr/bin/time -f "show --json: %e s, peak RSS %M KB" $B/franchise --data-dir $W/full show $ROOT --json > $W/show.json; done
ls -la $W/show.json | awk '{print "show --json bytes: " $5}'
cat > $W/same.sql <<SQL
WITH RECURSIVE walk(id) AS (SELECT CAST($ROOT AS BIGINT) UNION SELECT r.related_id FROM anime_relation r JOIN walk w ON r.anime_id = w.id WHERE r.related_kind = 'ANIME' AND r.relation_type IN ('PREQUEL','SEQUEL','PARENT','SIDE_STORY','ALTERNATIVE','SPIN_OFF','SUMMARY','COMPILATION','CONTAINS')) SELECT a.id, COALESCE(a.title_english, a.title_romaji, a.title_native), a.format, a.status, a.season, a.season_year, a.start_year, a.start_month, a.start_day FROM walk JOIN anime a ON a.id = walk.id ORDER BY a.id;
SELECT anime_id, related_id, relation_type, derived, related_kind, related_format, related_title FROM anime_relation WHERE anime_id IN (SELECT id FROM anime) ORDER BY anime_id, related_id;
SQL
for i in 1 2 3; do /usr/bin/time -f "sqlite3, the same queries: %e s, peak RSS %M KB" sqlite3 $W/full/franchise.sqlite < $W/same.sql > /dev/null; done
