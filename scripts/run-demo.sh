#!/usr/bin/env bash
# The main job: install if needed, start the whole fleet (Temporal dev server + five worker
# processes), process the generated sample set end to end, print the summary, stop everything.
# Extra arguments go to `damfleet demo` (e.g. --json, --keep-running).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/damfleet demo "$@"
