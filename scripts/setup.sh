#!/usr/bin/env bash
# Installs the system tools smith needs beyond Rust and Python 3:
#   - bubblewrap (`bwrap`), for the sandbox that runs mutated code with a
#     read-only system, no network and its own PID namespace.
# Installs from Debian/Ubuntu packages when missing and running as root (or
# with passwordless sudo); otherwise says what to install and carries on,
# because everything except the bubblewrap sandbox works without it.
# uv is not needed here: smith installs it from PyPI into its cache on first use.
set -u

have() { command -v "$1" >/dev/null 2>&1; }

if ! have python3; then
  echo "setup: python3 is required (3.9 or newer) and was not found" >&2
  exit 1
fi
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "setup: python3 lacks venv/ensurepip (Debian: apt-get install python3-venv)" >&2
fi

if ! have bwrap; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if have sudo && sudo -n true 2>/dev/null; then SUDO="sudo -n"; fi
  fi
  if have apt-get && { [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; }; then
    echo "setup: installing bubblewrap from the distribution's packages" >&2
    $SUDO apt-get install -y -qq bubblewrap >/dev/null 2>&1 \
      || { $SUDO apt-get update -qq >/dev/null 2>&1 && $SUDO apt-get install -y -qq bubblewrap >/dev/null 2>&1; } \
      || echo "setup: apt-get install bubblewrap failed; the bubblewrap sandbox will be unavailable" >&2
  else
    echo "setup: bubblewrap (bwrap) is missing; install it to use the bubblewrap sandbox" >&2
  fi
fi

if have bwrap; then
  if ! bwrap --ro-bind / / --unshare-net --unshare-pid --dev /dev --proc /proc true 2>/dev/null; then
    echo "setup: bwrap is installed but cannot create namespaces here" \
         "(user namespaces disabled, or a container without CAP_SYS_ADMIN)" >&2
  fi
fi
exit 0
