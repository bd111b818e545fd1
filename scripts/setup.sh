#!/usr/bin/env bash
# Installs what Qasar needs and builds it. Idempotent: a second run does nothing it need not.
#   scripts/setup.sh [extra Debian packages…]
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }

node_ok() {
  command -v node >/dev/null 2>&1 || return 1
  node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'
}
if ! node_ok; then
  log "Node.js >= 20.19 is required (found: $(node --version 2>/dev/null || echo none))."
  exit 1
fi

apt_install() {
  [ "$#" -gt 0 ] || return 0
  local sudo=''
  [ "$(id -u)" -eq 0 ] || sudo='sudo'
  log "installing Debian packages: $*"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

missing=()
command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || missing+=(ffmpeg)
# PDF pages (pdftoppm, pdfinfo) and iPhone HEIC stills (heif-convert), which sharp cannot decode.
command -v pdftoppm >/dev/null 2>&1 && command -v pdfinfo >/dev/null 2>&1 || missing+=(poppler-utils)
command -v heif-convert >/dev/null 2>&1 || missing+=(libheif-examples)
for pkg in "$@"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
apt_install "${missing[@]+"${missing[@]}"}"

# npm ci only when the lock file changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || ! cmp -s package-lock.json node_modules/.qasar-installed-lock; then
  log 'installing npm packages'
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.qasar-installed-lock
fi

# Build only when the sources, the compiler settings or the packages changed since the last build:
# a start of an unchanged checkout runs the JavaScript already there.
build_stamp() {
  find src tsconfig.json package-lock.json -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
}
stamp=$(build_stamp)
if [ -f dist/cli/main.js ] && [ "$(cat dist/.qasar-build-stamp 2>/dev/null)" = "$stamp" ]; then
  log 'build is up to date'
else
  log 'building'
  node_modules/.bin/tsc -p tsconfig.json
  echo "$stamp" > dist/.qasar-build-stamp
fi
