#!/usr/bin/env bash
# Create (or reuse) the environment with an older AG2 Classic minor (0.10.x, CMBAgent's line) that
# tests/ag2/test_ag2_older_classic.py runs the AG2 Classic capture tests in, and print its interpreter.
# Usage: export SKILLMINE_AG2_CLASSIC_OLD_PYTHON="$(scripts/ag2_classic_old_env.sh [DIR])"   (default ./.venv-ag2-0.10)
set -euo pipefail
cd "$(dirname "$0")/.."
exec scripts/ag2_env.sh 'ag2>=0.10.5,<0.11' "${1:-.venv-ag2-0.10}" 'pytest>=8,<10' 'pytest-timeout>=2.3,<3'
