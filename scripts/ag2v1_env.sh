#!/usr/bin/env bash
# Create (or reuse) the AG2 v1 environment the `ag2v1` tests run their scenarios in, and print its interpreter.
# AG2 v1 (`ag2>=1.2.1,<1.3`, the `skillmine[ag2v1]` range) and AG2 Classic (`ag2<1`, the main .venv) share the
# distribution name `ag2`, so v1 lives in its own venv: AG2 v1 plus what an agent process needs to capture
# (SQLAlchemy, Alembic), and this checkout installed editable without its other dependencies (the tests migrate and
# read the store from the main environment).
# Usage: export SKILLMINE_AG2V1_PYTHON="$(scripts/ag2v1_env.sh [DIR])"   (DIR defaults to ./.venv-ag2v1)
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-.venv-ag2v1}"
want="ag2>=1.2.1,<1.3 sqlalchemy>=2.0.30,<2.2 alembic>=1.13,<1.21 $(sha256sum pyproject.toml | cut -d' ' -f1)"
stamp="$dir/.skillmine-ag2v1"
if ! [ -x "$dir/bin/python" ] || ! [ -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  python="${PYTHON:-python3}"
  [ -x "$dir/bin/python" ] || "$python" -m venv "$dir" >&2
  "$dir/bin/python" -m pip install --quiet 'ag2>=1.2.1,<1.3' 'sqlalchemy>=2.0.30,<2.2' 'alembic>=1.13,<1.21' >&2
  "$dir/bin/python" -m pip install --quiet --no-deps -e . >&2
  echo "$want" > "$stamp"
fi
"$dir/bin/python" -c 'import ag2, capture; assert not ag2.__version__.startswith("0.")' >&2
cd "$dir" && echo "$PWD/bin/python"
