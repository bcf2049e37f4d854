#!/usr/bin/env bash
# What CI runs, and what anyone runs on a fresh clone: install everything (scripts/setup.sh), run
# the full test suite (under CI=true a missing Envoy fails it), then replay the Dockerfile's steps
# without a Docker engine (scripts/docker-steps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npm test
bash scripts/docker-steps.sh
