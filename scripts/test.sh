#!/usr/bin/env bash
# Runs smith's whole test suite on a fresh machine: first installs what the
# tests need (bubblewrap from Debian's packages, via scripts/setup.sh), then
# `cargo test` over every crate. Python virtualenvs for the tests are built
# by the tests themselves (pytest and coverage from PyPI); the tests that use
# the real-project corpus fetch it from PyPI with scripts/corpus/fetch-corpus.sh
# into target/. Nothing outside this checkout is read.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f scripts/setup.sh ]; then
  bash scripts/setup.sh
fi
exec cargo test --workspace "$@"
