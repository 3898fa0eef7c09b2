#!/usr/bin/env bash
# Regenerate the pinned lock files from pyproject.toml (Linux x86_64, CPython 3.11).
#   requirements/all.lock       every extra + dev tools: what scripts/bootstrap.sh installs
#   requirements/<pool>.lock    one per worker pool image (pipeline needs no media libraries); each
#                               carries the small 'tracing' extra so DAMFLEET_TRACING=otlp works in
#                               every image (OpenTelemetry is not imported while tracing is off)
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-.venv/bin/uv}
compile() {  # name, extras...
  local name=$1; shift
  local args=()
  for extra in "$@"; do args+=(--extra "$extra"); done
  "$UV" pip compile pyproject.toml "${args[@]}" --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
    --constraint requirements/constraints.txt --no-header --quiet -o "requirements/$name.lock"
}
compile all all dev
compile pipeline tracing
compile ingest ingest tracing
compile transcode transcode tracing
compile ai ai tracing
compile distribution distribution tracing
echo "locks written: $(ls requirements)"
