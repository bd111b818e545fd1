#!/usr/bin/env bash
# Real photographs for the vision model tests, from Debian packages, into .cache/fixtures/photos/:
# darknet's sample pictures (dog with bicycle and car, horses, person with dog and horse, eagle,
# giraffe and zebra, kites) and scikit-image's data pictures (chelsea the cat, coffee, motorcycle,
# astronaut). The packages are downloaded, not installed: `apt-get download` and `dpkg -x`.
# And espeak-ng, installed, which speaks the known text of the speech tests.
# Idempotent: a second run finds every picture and tool in place and does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[test-fixtures] %s\n' "$*" >&2; }

dest=.cache/fixtures/photos
# Debian package, then the pictures taken from it (paths inside the package).
DARKNET=(darknet usr/share/darknet/data dog.jpg horses.jpg person.jpg eagle.jpg giraffe.jpg kite.jpg)
SKIMAGE=(python3-skimage usr/lib/python3/dist-packages/skimage/data chelsea.png coffee.png motorcycle_left.png astronaut.png)

have_all() { # package folder files…
  shift 2
  local f
  for f in "$@"; do [ -s "$dest/$f" ] || return 1; done
}

sudo=''
[ "$(id -u)" -eq 0 ] || sudo='sudo'
apt_updated=
apt_update() {
  [ -z "$apt_updated" ] || return 0
  log 'updating the Debian package lists'
  $sudo apt-get update -qq
  apt_updated=1
}

download() { # package (into the current folder)
  if apt-get download -qq "$1" >/dev/null 2>&1; then return 0; fi
  apt_update
  apt-get download -qq "$1" >/dev/null
}

apt_install() { # Debian package
  log "installing the Debian package $1"
  if DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$1" >/dev/null 2>&1; then return 0; fi
  apt_update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$1" >/dev/null
}

take() { # package folder files…
  local pkg=$1 dir=$2
  shift 2
  have_all "$pkg" "$dir" "$@" && return 0
  log "taking pictures from the Debian package $pkg (downloaded, not installed)"
  local tmp
  tmp=$(mktemp -d .cache/fixtures/tmp.XXXXXX)
  (
    trap 'rm -rf "$tmp"' EXIT
    cd "$tmp"
    download "$pkg"
    dpkg -x ./"${pkg}"_*.deb root
    cd - >/dev/null
    local f
    for f in "$@"; do
      if [ ! -s "$tmp/root/$dir/$f" ]; then
        log "$pkg has no $dir/$f"
        exit 1
      fi
      cp "$tmp/root/$dir/$f" "$dest/$f"
    done
  )
}

mkdir -p "$dest"
take "${DARKNET[@]}"
take "${SKIMAGE[@]}"
command -v espeak-ng >/dev/null 2>&1 || apt_install espeak-ng
