#!/usr/bin/env bash
# Device check for a short accelerator lease (under 8 minutes at paper size); see
# benchmarks/device_check.py for what it measures.
#   benchmarks/device_check.sh                          # paper size -> out/device_check.json
#   benchmarks/device_check.sh --size tiny --json /tmp/dc.json
# PYTHON picks the interpreter (default: python on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
json=(--json out/device_check.json)
for arg in "$@"; do
  case "$arg" in --json*) json=() ;; esac
done
exec timeout 470 "${PYTHON:-python}" -m benchmarks.device_check "${json[@]}" "$@"
