#!/usr/bin/env bash
# Quick start: set everything up and run the whole test suite, twice, on the node on PATH:
#   1. embedded default: SQLite + the embedded queue + chunk state in the database
#   2. scale-up: PostgreSQL + BullMQ on Redis + chunk state in Redis
# then the fast tier (scripts/test-fast.sh) once more on Node 24, installed into .cache/node24.
# Outside CI, a local PostgreSQL and Redis are started (and installed) if none answers.
# Under CI=true they must already answer: an unreachable one fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[test] %s\n' "$*" >&2; }

export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
export TEST_REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379}"

# The tests read real media files from the shared samples folder beside the checkout.
samples="$(cd .. && pwd)/shared/media-samples"
if [ ! -f "$samples/MANIFEST.tsv" ]; then
  log "the test media are missing: expected ../shared/media-samples (with MANIFEST.tsv) beside this checkout"
  exit 1
fi

bash scripts/setup.sh chromium
# Real photographs for the vision model tests (Debian packages, downloaded once into .cache/fixtures).
bash scripts/test-fixtures.sh

pg_up() { node -e '
  const c = new (require("pg").Client)({ connectionString: process.env.TEST_DATABASE_URL, connectionTimeoutMillis: 2000 });
  c.connect().then(() => c.query("select 1")).then(() => process.exit(0), () => process.exit(1));' 2>/dev/null; }
redis_up() { node -e '
  const R = require("ioredis").Redis; const r = new R(process.env.TEST_REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on("error", () => {}); r.connect().then(() => r.ping()).then(() => process.exit(0), () => process.exit(1));' 2>/dev/null; }

start_postgres() {
  log 'no PostgreSQL answers: starting a local one'
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    bash scripts/setup.sh postgresql
  fi
  local bin dir
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  dir=/tmp/qasar-test-pg
  local run_as=()
  if [ "$(id -u)" -eq 0 ]; then run_as=(runuser -u postgres --); fi
  if [ ! -f "$dir/PG_VERSION" ]; then
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
    "${run_as[@]}" "$bin/initdb" -D "$dir" -A trust -U postgres >/dev/null
  fi
  "${run_as[@]}" "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w \
    -o "-p 5432 -c listen_addresses=127.0.0.1 -k /tmp" start >/dev/null
  "${run_as[@]}" "$bin/createdb" -h 127.0.0.1 -p 5432 -U postgres test 2>/dev/null || true
}

start_redis() {
  log 'no Redis answers: starting a local one'
  command -v redis-server >/dev/null 2>&1 || bash scripts/setup.sh redis-server
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no \
    --dir /tmp --logfile /tmp/qasar-test-redis.log
  for _ in $(seq 1 50); do redis_up && return 0; sleep 0.1; done
}

if [ "${CI:-}" = "true" ]; then
  pg_up || { log "PostgreSQL is not reachable at $TEST_DATABASE_URL (required under CI)"; exit 1; }
  redis_up || { log "Redis is not reachable at $TEST_REDIS_URL (required under CI)"; exit 1; }
else
  pg_up || start_postgres
  pg_up || { log "PostgreSQL still not reachable at $TEST_DATABASE_URL"; exit 1; }
  redis_up || start_redis
  redis_up || { log "Redis still not reachable at $TEST_REDIS_URL"; exit 1; }
fi

log 'type-checking sources and tests'
node_modules/.bin/tsc -p tsconfig.test.json

mapfile -t unit_tests < <(find test/unit -name '*.test.ts' | sort)
mapfile -t backend_tests < <(find test/integration -name '*.test.ts' | sort)
if [ "${#unit_tests[@]}" -eq 0 ] || [ "${#backend_tests[@]}" -eq 0 ]; then
  log 'no test files found'
  exit 1
fi

passed=0
failed=0
status=0
summary=()
count() {
  local what=$1 rc=$2 p=$3 f=$4
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${f:-0}))
  summary+=("$what: ${p:-0} passed, ${f:-0} failed")
  if [ "$rc" -ne 0 ] || [ "${p:-0}" -eq 0 ]; then status=1; fi
}
run_suite() {
  local name=$1; shift
  local out
  out=$(mktemp)
  log "suite: $name, on Node $(node --version)"
  set +e
  QASAR_TEST_BACKEND="$name" node --import tsx --test --test-reporter=spec --test-concurrency=2 "$@" 2>&1 | tee "$out"
  local rc=${PIPESTATUS[0]}
  set -e
  local p f
  p=$(grep -E '^ℹ pass [0-9]+' "$out" | tail -n 1 | awk '{print $3}' || true)
  f=$(grep -E '^ℹ fail [0-9]+' "$out" | tail -n 1 | awk '{print $3}' || true)
  rm -f "$out"
  count "suite $name on Node $(node --version)" "$rc" "$p" "$f"
}
# The fast tier on Node 24; its script ends with "N passed, N failed".
run_fast_node24() {
  local out
  out=$(mktemp)
  log 'suite: fast tier, on Node 24'
  set +e
  bash scripts/test-fast.sh --node24 2>&1 | tee "$out"
  local rc=${PIPESTATUS[0]}
  set -e
  local version p f
  version=$(grep -oE '^\[test-fast\] Node v[0-9.]+' "$out" | head -n 1 | awk '{print $3}' || true)
  p=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1 | awk '{print $1}' || true)
  f=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1 | awk '{print $3}' || true)
  rm -f "$out"
  count "fast tier on Node ${version:-24 (not installed)}" "$rc" "$p" "$f"
}

run_suite embedded "${unit_tests[@]}" "${backend_tests[@]}"
run_suite scale "${backend_tests[@]}"
run_fast_node24

for line in "${summary[@]}"; do log "$line"; done
echo "${passed} passed, ${failed} failed"
exit "$status"
