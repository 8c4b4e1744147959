#!/usr/bin/env bash
# Create (or reuse) the AG2 v1 environment the `ag2v1` tests run their scenarios in, and print its interpreter:
# AG2 v1 in the `skillmine[ag2v1]` range beside this checkout (see scripts/ag2_env.sh).
# Usage: export SKILLMINE_AG2V1_PYTHON="$(scripts/ag2v1_env.sh [DIR])"   (DIR defaults to ./.venv-ag2v1)
set -euo pipefail
cd "$(dirname "$0")/.."
python=$(scripts/ag2_env.sh 'ag2>=1.2.1,<1.3' "${1:-.venv-ag2v1}")
"$python" -c 'import ag2; assert not ag2.__version__.startswith("0."), ag2.__version__' >&2
echo "$python"
