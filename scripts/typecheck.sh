#!/usr/bin/env bash
# `npm run typecheck`: src/ alone (tsconfig.json, what the build compiles) and src/ with test/ and
# bench/ (tsconfig.test.json), side by side on the two cores. Incremental: the build info is kept in
# .cache/tsc, so a run after a small change takes seconds.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

tsc=node_modules/.bin/tsc
out_src=$(mktemp)
out_all=$(mktemp)
"$tsc" -p tsconfig.json --noEmit --incremental --tsBuildInfoFile .cache/tsc/src.tsbuildinfo > "$out_src" 2>&1 &
pid=$!
"$tsc" -p tsconfig.test.json --incremental --tsBuildInfoFile .cache/tsc/test.tsbuildinfo > "$out_all" 2>&1
all=$?
wait "$pid"
src=$?
cat "$out_src" "$out_all"
rm -f "$out_src" "$out_all"
[ "$src" -eq 0 ] && [ "$all" -eq 0 ]
