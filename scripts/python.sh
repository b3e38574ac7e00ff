#!/usr/bin/env bash
# Builds smith's Python package (the smith-py crate, with maturin) and
# installs it into a virtualenv, made first if missing.
#
#   scripts/python.sh [VENV] [--debug] [--extras mini,test]
#
# VENV defaults to .venv. The wheel is built in release mode unless --debug
# is given, and lands in target/wheels/. --extras installs the package's
# optional dependencies too: `mini` (mini-swe-agent) and `test` (pytest).
# Needs python3 (3.9 or newer, with venv) and cargo.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=".venv"
profile="--release"
extras=""
while [ $# -gt 0 ]; do
  case "$1" in
    --debug) profile="" ;;
    --extras) extras="$2"; shift ;;
    --extras=*) extras="${1#--extras=}" ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    -*) echo "python.sh: unknown option $1" >&2; exit 2 ;;
    *) venv="$1" ;;
  esac
  shift
done

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
py="$venv/bin/python"
if ! "$py" -m maturin --version >/dev/null 2>&1; then
  "$py" -m pip install -q --disable-pip-version-check "maturin>=1.5,<2"
fi

out="target/wheels"
rm -f "$out"/smith-*.whl
# shellcheck disable=SC2086
"$py" -m maturin build $profile --quiet -m smith-py/Cargo.toml -o "$out" -i "$py" >&2
wheel=$(ls "$out"/smith-*.whl)
spec="$wheel"
if [ -n "$extras" ]; then spec="smith[$extras] @ file://$(pwd)/$wheel"; fi
"$py" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$wheel"
if [ -n "$extras" ]; then
  "$py" -m pip install -q --disable-pip-version-check "$spec"
fi
echo "smith installed in $venv ($wheel)"
