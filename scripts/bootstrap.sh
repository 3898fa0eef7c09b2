#!/usr/bin/env bash
# Install everything damfleet needs into ./.venv on Debian 12 with Python 3.11 (run as root
# for the apt step; idempotent, fast when nothing changed).
#   - apt, only where no PyPI package serves: ffmpeg/ffprobe, libvips, exiftool (+ python3-venv),
#     openssh-server (the real sshd the SFTP delivery tests and bench start on loopback),
#     espeak-ng (the speech bench/ai.py generates for its WER table)
#   - a venv with uv, synced exactly to requirements/all.lock, plus this project (editable)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*" >&2; }

missing=()
command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || missing+=(ffmpeg)
ldconfig -p 2>/dev/null | grep -q 'libvips.so.42' || missing+=(libvips42)
command -v exiftool >/dev/null 2>&1 || missing+=(libimage-exiftool-perl)
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v strace >/dev/null 2>&1 || missing+=(strace)   # the egress and hostile-input tests trace connects and opens
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' \
  || { echo "damfleet needs Python >= 3.11 (found $("$PYTHON" --version))" >&2; exit 1; }
"$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  if [ "$(id -u)" != 0 ]; then echo "run as root (or install: ${missing[*]})" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  log "creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv
fi
if [ ! -x .venv/bin/uv ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check "uv==0.13.9"
fi
stamp=.venv/.damfleet-lock.sha256
want=$(cat requirements/all.lock pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "syncing .venv to requirements/all.lock (first run downloads ~6 GB: torch's CUDA build, used on CPU too)"
  .venv/bin/uv pip sync -q --python .venv/bin/python requirements/all.lock
  .venv/bin/uv pip install -q --python .venv/bin/python --no-deps -e .
  echo "$want" > "$stamp"
fi
log "ready: $(.venv/bin/python --version), $(ffmpeg -version | head -1 | cut -d' ' -f1-3), libvips $(.venv/bin/python -c 'import pyvips; print(pyvips.version(0), pyvips.version(1), sep=".")')"
