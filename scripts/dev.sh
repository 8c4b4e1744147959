#!/usr/bin/env bash
# One entry point for a fresh clone: `scripts/dev.sh run` (set up, then run the main job on the embedded
# defaults) and `scripts/dev.sh test` (set up, then run the test suite). Everything is installed from this
# repository's own pyproject.toml into ./.venv; re-running only reinstalls when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {
  for candidate in "${PYTHON:-}" python3.11 python3.12 python3.13 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "skillmine needs Python >= 3.11 (set PYTHON=/path/to/python3.11)" >&2
  return 1
}

setup() {
  local stamp=.venv/.skillmine-installed want
  want=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  echo "setting up .venv from pyproject.toml (the first time takes a minute or two; pip's log: .venv/setup.log)" >&2
  [ -x .venv/bin/python ] || "$(find_python)" -m venv .venv
  if ! { .venv/bin/python -m pip install --upgrade pip &&
         .venv/bin/python -m pip install -e '.[dev]'; } > .venv/setup.log 2>&1; then
    tail -n 15 .venv/setup.log >&2
    echo "scripts/dev.sh: installing the dependencies failed: see .venv/setup.log (fix: reach PyPI, or point" \
         "PIP_INDEX_URL at a mirror, then run this again)" >&2
    return 1
  fi
  echo "$want" > "$stamp"
}

case "${1:-}" in
  run)
    shift; setup
    exec .venv/bin/skillmine quickstart "$@"
    ;;
  test)
    shift; setup
    set +e
    .venv/bin/python -m pytest "$@"
    status=$?
    set -e
    [ "$status" -eq 5 ] && { echo "no tests were collected" >&2; exit 1; }
    exit "$status"
    ;;
  *)
    echo "usage: scripts/dev.sh run|test [args...]" >&2
    exit 2
    ;;
esac
