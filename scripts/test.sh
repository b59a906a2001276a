#!/usr/bin/env bash
# The test command: installs on first use, then lint + the whole test suite (CPU only).
source "$(dirname "$0")/env.sh"
ruff check .
python -m pytest -q "$@"
