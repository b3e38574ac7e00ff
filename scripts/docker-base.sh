#!/usr/bin/env bash
# Builds smith's local Python base image from Debian's packages, for Docker
# engines that cannot pull from a registry: a minimal Debian (debootstrap
# --variant=minbase) with python3, venv, pip and git, imported with
# `docker import` and tagged as smith's default base (SMITH_BASE_IMAGE,
# default `smith/python-base:3`). Where a registry is reachable smith uses
# the ordinary `python:<version>-slim` instead and this image is not needed.
#
# Skips when the tag exists. Needs root (or passwordless sudo) for
# debootstrap; installs debootstrap from the distribution's packages when
# missing. Exits 0 with a message when docker does not answer.
#
# Environment: SMITH_BASE_IMAGE (tag), SMITH_DEBIAN_SUITE (default bookworm),
# SMITH_DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail

TAG=${SMITH_BASE_IMAGE:-smith/python-base:3}
SUITE=${SMITH_DEBIAN_SUITE:-bookworm}
MIRROR=${SMITH_DEBIAN_MIRROR:-http://deb.debian.org/debian}
DOCKER=${DOCKER:-docker}

have() { command -v "$1" >/dev/null 2>&1; }

if ! have "$DOCKER" || ! "$DOCKER" info >/dev/null 2>&1; then
  echo "docker-base: no docker engine answers; skipping the base image" >&2
  exit 0
fi
if "$DOCKER" image inspect "$TAG" >/dev/null 2>&1; then
  echo "docker-base: $TAG exists" >&2
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if have sudo && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "docker-base: debootstrap needs root (or passwordless sudo); cannot build $TAG" >&2
    exit 1
  fi
fi
if ! have debootstrap && [ ! -x /usr/sbin/debootstrap ]; then
  echo "docker-base: installing debootstrap" >&2
  $SUDO apt-get install -y -qq debootstrap >/dev/null 2>&1 \
    || { $SUDO apt-get update -qq >/dev/null 2>&1 && $SUDO apt-get install -y -qq debootstrap >/dev/null 2>&1; }
fi
DEBOOTSTRAP=$(command -v debootstrap || echo /usr/sbin/debootstrap)

ROOT=$(mktemp -d "${TMPDIR:-/tmp}/smith-base.XXXXXX")
cleanup() {
  # debootstrap mounts /proc and /sys in the new root; never delete through them.
  for m in proc sys; do $SUDO umount "$ROOT/$m" 2>/dev/null || true; done
  $SUDO rm -rf --one-file-system "$ROOT" "$ROOT.log"
}
trap cleanup EXIT

start=$(date +%s)
echo "docker-base: debootstrap $SUITE (minbase) into $ROOT" >&2
$SUDO "$DEBOOTSTRAP" --variant=minbase \
  --include=python3,python3-venv,python3-pip,python-is-python3,git,ca-certificates \
  "$SUITE" "$ROOT" "$MIRROR" >"$ROOT.log" 2>&1 \
  || { tail -n 30 "$ROOT.log" >&2; exit 1; }

# Trim what an image never needs: package caches, lists, docs, locales.
$SUDO rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/* \
  "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/* \
  "$ROOT"/usr/share/locale/* "$ROOT"/var/log/* "$ROOT"/tmp/*
# pip of Debian refuses system-wide installs (PEP 668); venvs are unaffected.

$SUDO tar -C "$ROOT" --one-file-system -c . | "$DOCKER" import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'ENV LANG=C.UTF-8' \
  -c 'CMD ["python3"]' \
  -m "smith base: Debian $SUITE minbase with python3, venv, pip, git" \
  - "$TAG" >/dev/null
echo "docker-base: built $TAG in $(( $(date +%s) - start ))s ($("$DOCKER" image inspect -f '{{.Size}}' "$TAG") bytes)" >&2
