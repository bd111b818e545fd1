#!/usr/bin/env bash
# The fast tier: tests that need no ffmpeg, poppler or libheif tools, no shared media samples, no
# PostgreSQL, Redis or browser; embedded SQLite (a temp file) is fine. Well under a minute.
#   scripts/test-fast.sh                     # on the node on PATH (the one that installed node_modules)
#   scripts/test-fast.sh --node24            # on Node 24 (scripts/node24.sh installs it into .cache/)
#   scripts/test-fast.sh --node PATH_TO_NODE
# Ends with the line "N passed, N failed".
#
# To add a test: list a file whose every test is fast in FILES, or in SQLITE_FILES when it opens the
# embedded database (better-sqlite3). In a file that also has slow tests, put "(pure)" in the name of
# a describe block whose tests and hooks need none of the above, and list the file in PURE_FILES.
# A file that starts the whole app costs 2-5 s of CPU, so few are here: rate-limit, recommendations
# and search-cache would qualify too and are left to the full suite, to keep the tier quick.
# audio-packaging.test.ts has a "(pure)" block but reads the samples' MANIFEST.tsv while its tests
# are being collected, which a name pattern does not skip: it stays out.
set -euo pipefail
cd "$(dirname "$0")/.."

FILES=(
  test/unit/settings.test.ts
  test/unit/storage-layout.test.ts
  test/unit/search-result-cache.test.ts
  test/unit/media-facts.test.ts
  test/unit/hashing-writer.test.ts
  test/unit/log-redaction.test.ts
  test/unit/process-identity.test.ts
  test/unit/public-reason.test.ts
  test/unit/label-aggregate.test.ts
  test/unit/document-text.test.ts
  test/unit/speech-windows.test.ts
)
SQLITE_FILES=(
  test/unit/record-cache.test.ts
  test/integration/feeds.test.ts
  test/integration/http.test.ts
  test/integration/malformed-requests.test.ts
  test/integration/prepared-query.test.ts
)
PURE_FILES=(
  test/unit/duration-bound.test.ts
  test/unit/probe-and-ladder.test.ts
  test/unit/webm.test.ts
)

node_bin=node
case "${1:-}" in
  --node24) node_bin=$(bash scripts/node24.sh) ;;
  --node) node_bin=${2:?--node needs the path of a node binary} ;;
  '') ;;
  *) echo "usage: $0 [--node24 | --node PATH]" >&2; exit 2 ;;
esac
version=$("$node_bin" --version)

log() { printf '[test-fast] %s\n' "$*" >&2; }

# node_modules/better-sqlite3 is compiled for the ABI of the Node that installed it. Built for Node 24
# (24.21), better-sqlite3 12 aborts the process when a statement is garbage-collected; version 13
# fixes that but needs Node 22 (docs/decisions.md). So another Node runs the tests without SQLite.
files=("${FILES[@]}")
if [ "$("$node_bin" -p process.versions.modules)" = "$(node -p process.versions.modules)" ]; then
  files+=("${SQLITE_FILES[@]}")
else
  log "Node $version: leaving out the ${#SQLITE_FILES[@]} files that open SQLite (better-sqlite3 is built for $(node --version))"
fi

passed=0
failed=0
status=0
run() {
  local what=$1; shift
  local out
  out=$(mktemp)
  log "Node $version: $what"
  set +e
  QASAR_TEST_BACKEND=embedded "$node_bin" --import tsx --test --test-reporter=spec --test-concurrency=2 "$@" 2>&1 | tee "$out"
  local rc=${PIPESTATUS[0]}
  set -e
  local p f
  p=$(grep -E '^ℹ pass [0-9]+' "$out" | tail -n 1 | awk '{print $3}' || true)
  f=$(grep -E '^ℹ fail [0-9]+' "$out" | tail -n 1 | awk '{print $3}' || true)
  rm -f "$out"
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${f:-0}))
  if [ "$rc" -ne 0 ] || [ "${p:-0}" -eq 0 ]; then status=1; fi
}

start=$SECONDS
run "${#files[@]} fast test files" "${files[@]}"
run "the \"(pure)\" blocks of ${#PURE_FILES[@]} more files" --test-name-pattern='\(pure\)' "${PURE_FILES[@]}"
log "Node $version: fast tier: ${passed} passed, ${failed} failed, in $((SECONDS - start)) s"

echo "${passed} passed, ${failed} failed"
exit "$status"
