#!/usr/bin/env bash
# remixtv's one entry point for a fresh Debian/Ubuntu machine.
#   ./run.sh demo    set up (if needed), generate the demo call-out, build its preview episode
#   ./run.sh test    set up (if needed), run the test suite
#   ./run.sh setup   only set up: system packages (ffmpeg, fonts), .venv with locked Python packages
# Anything after the command is passed on (to `remixtv demo` or to pytest).
set -euo pipefail
cd "$(dirname "$0")"
export DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false

APT_PACKAGES=(ffmpeg fonts-dejavu-core fonts-noto-core fonts-noto-cjk fonts-symbola libgl1 python3-venv)
# chromium: the review page's browser tests (Playwright drives it); melt: renders an MLT export headless,
# the independent check of `remixtv export`; espeak-ng: speech with known words, for the captions tests
APT_PACKAGES+=(chromium melt espeak-ng)
COMMANDS=(ffmpeg ffprobe chromium melt espeak-ng)

need_apt() {
  local c
  for c in "${COMMANDS[@]}"; do command -v "$c" >/dev/null || return 0; done
  # captured first: under pipefail, `fc-list | grep -q` fails at random when grep exits early (SIGPIPE)
  local fonts libs
  fonts=$(fc-list 2>/dev/null || true); libs=$(ldconfig -p 2>/dev/null || true)
  grep -q "Noto Sans CJK" <<<"$fonts" && grep -q "NotoSansArabic" <<<"$fonts" && grep -q "Symbola" <<<"$fonts" \
    && grep -q "libGL.so.1" <<<"$libs" || return 0
  return 1
}

setup() {
  if need_apt; then
    local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "installing system packages: ${APT_PACKAGES[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null
  fi
  local py=${PYTHON:-python3}
  "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "remixtv needs Python 3.11+ ($py is older)" >&2; exit 1; }
  local stamp=".venv/.remixtv-setup-$(cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)"
  if [ ! -e "$stamp" ]; then
    [ -x .venv/bin/python ] || "$py" -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -r requirements.lock
    .venv/bin/python -m pip install -q --no-deps -e .
    rm -f .venv/.remixtv-setup-*; touch "$stamp"
  fi
}

cmd=${1:-help}; shift || true
case "$cmd" in
  setup) setup ;;
  demo)  setup; exec .venv/bin/remixtv demo "$@" ;;
  test)  setup; exec .venv/bin/python -m pytest "$@" ;;
  *) sed -n '2,6p' "$0"; exit 2 ;;
esac
