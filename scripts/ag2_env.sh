#!/usr/bin/env bash
# Create (or reuse) a side environment with one AG2 release line, and print its interpreter.
# AG2 v1 (`ag2>=1.2`) and AG2 Classic (`ag2<1`) share the distribution name `ag2`, and the main .venv holds the newest
# Classic, so every other line lives in its own venv: that AG2, what an agent process needs to capture (SQLAlchemy,
# Alembic), any extra packages named, and this checkout installed editable without its other dependencies.
# Usage: scripts/ag2_env.sh SPEC DIR [EXTRA...]   e.g. scripts/ag2_env.sh 'ag2>=0.10.5,<0.11' .venv-ag2-0.10 pytest
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: $0 SPEC DIR [EXTRA...]" >&2; exit 2; }
spec="$1" dir="$2"
shift 2
packages=("$spec" 'sqlalchemy>=2.0.30,<2.2' 'alembic>=1.13,<1.21' "$@")
want="${packages[*]} $(sha256sum pyproject.toml | cut -d' ' -f1)"
stamp="$dir/.skillmine-ag2-env"
if ! [ -x "$dir/bin/python" ] || ! [ -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  [ -x "$dir/bin/python" ] || "${PYTHON:-python3}" -m venv "$dir" >&2
  "$dir/bin/python" -m pip install --quiet "${packages[@]}" >&2
  "$dir/bin/python" -m pip install --quiet --no-deps -e . >&2
  echo "$want" > "$stamp"
fi
"$dir/bin/python" -c 'import capture, sqlalchemy, alembic' >&2
cd "$dir" && echo "$PWD/bin/python"
