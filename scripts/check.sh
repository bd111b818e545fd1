#!/usr/bin/env bash
# The developer loop (`npm run check`): type-check, lint, format, layering, fast tests. Every step runs even
# when an earlier one failed, so one run shows every problem; a table of the steps and their times ends it.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

steps=(typecheck lint:code format:check lint:layers test:fast)
results=()
status=0
start=$SECONDS
for step in "${steps[@]}"; do
  printf '\n[check] npm run %s\n' "$step" >&2
  t=$SECONDS
  if npm run --silent "$step"; then r=ok; else r=FAILED; status=1; fi
  results+=("$(printf '%-12s %-6s %4d s' "$step" "$r" $((SECONDS - t)))")
done
printf '\n' >&2
for r in "${results[@]}"; do printf '[check] %s\n' "$r" >&2; done
printf '[check] %s in %d s\n' "$([ "$status" -eq 0 ] && echo passed || echo FAILED)" $((SECONDS - start)) >&2
exit "$status"
