#!/bin/bash
# Issue 19: the plans PostgreSQL ran for every statement slower than 10 ms during a 100k-anime
# `import --wait` (auto_explain with ANALYZE and BUFFERS, loaded for one database), read from the
# server's log. Needs release builds (cargo build --release -p franchise -p fake-anilist), a local
# PostgreSQL 15 whose log is /var/log/postgresql/postgresql-15-main.log, and superuser access.
set -u
B=${B:-$(cd "$(dirname "$0")/../../.." && pwd)/target/release}
DB=explain100k
PSQL="psql -h 127.0.0.1 -U postgres -d postgres -Atq"
$PSQL -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
$PSQL -c "ALTER DATABASE $DB SET session_preload_libraries = 'auto_explain'" \
      -c "ALTER DATABASE $DB SET auto_explain.log_min_duration = '10ms'" \
      -c "ALTER DATABASE $DB SET auto_explain.log_analyze = on" \
      -c "ALTER DATABASE $DB SET auto_explain.log_buffers = on" \
      -c "ALTER DATABASE $DB SET auto_explain.log_format = 'text'"
LOG=/var/log/postgresql/postgresql-15-main.log
START=$(wc -l < $LOG)
echo "log starts at line $START"
$B/fake-anilist --franchises 0 --giant 100000:25 --dead-rate 0 --adult-rate 0 --cross-links 0 --no-rate-limit --latency-ms 0 --jitter-ms 0 > /tmp/efake.log 2>&1 &
FAKE=$!
for i in $(seq 1 120); do grep -q " root " /tmp/efake.log && grep -q serving /tmp/efake.log && break; sleep 1; done
URL=$(grep -o "http://127.0.0.1:[0-9]*/" /tmp/efake.log | head -1)
export FRANCHISE_ANILIST__WALK_LEVELS=1 FRANCHISE_ANILIST__BUDGET_PER_MINUTE=1000000 FRANCHISE_ANILIST__MIN_SPACING_MS=0 FRANCHISE_WORKERS=500 FRANCHISE_IMPORT__MAX_ITEMS=1000000 FRANCHISE_IMPORT__MAX_DEPTH=1000
t0=$(date +%s)
$B/franchise --database-url postgres://postgres@127.0.0.1:5432/$DB --anilist-url $URL import 1 --wait > /tmp/eimport.log 2>&1
echo "import exit $? in $(( $(date +%s) - t0 )) s: $(tail -1 /tmp/eimport.log)"
kill $FAKE
tail -n +$START $LOG > /tmp/explain.log
echo "plans logged: $(grep -c 'LOG:  duration:' /tmp/explain.log)"
# Statements grouped by their text: calls over 10 ms, their total and the slowest.
python3 - <<'PY'
import re, collections
entries, cur = [], None
for l in open('/tmp/explain.log').read().split('\n'):
    m = re.search(r'LOG:  duration: ([0-9.]+) ms  plan:', l)
    if m:
        if cur: entries.append(cur)
        cur = [float(m.group(1)), []]
    elif cur is not None and re.match(r'^\d{4}-\d\d-\d\d ', l):
        entries.append(cur); cur = None
    elif cur is not None:
        cur[1].append(l.strip())
if cur: entries.append(cur)
agg = collections.defaultdict(lambda: [0, 0.0, 0.0])
for ms, text in entries:
    q = ' '.join(text)
    key = q.split('Query Text:', 1)[-1].strip()[:100]
    a = agg[key]; a[0] += 1; a[1] += ms; a[2] = max(a[2], ms)
for k, a in sorted(agg.items(), key=lambda kv: -kv[1][1])[:10]:
    print(f"{a[0]:5d} calls {a[1]/1000:7.1f} s, slowest {a[2]:7.1f} ms | {k}")
PY
echo "plans: /tmp/explain.log"
