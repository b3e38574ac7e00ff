#!/usr/bin/env bash
# Installs the system tools smith needs beyond Rust and Python 3:
#   - bubblewrap (`bwrap`), for the default sandbox: mutated and model code
#     runs in a user namespace with no capabilities, a read-only system, no
#     network and its own PID namespace;
#   - util-linux's `unshare`, `prlimit` and `setsid` (a PID namespace per
#     command where control groups are not available, the process budget
#     inside bubblewrap, and the containment tests), and `mount` (the
#     escape tests try it inside the sandbox).
# Installs from Debian/Ubuntu packages when missing and running as root (or
# with passwordless sudo); otherwise says what to install and carries on,
# because everything except the bubblewrap sandbox works without it.
#   - where a Docker engine answers, smith's local Python base image
#     (scripts/docker-base.sh: Debian minbase + python3, venv, pip, git),
#     which the Docker sandbox builds repository images on when no registry
#     is reachable; skipped when the image exists.
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

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if have sudo && sudo -n true 2>/dev/null; then SUDO="sudo -n"; fi
fi
can_install() { have apt-get && { [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; }; }

# program -> Debian package
missing=""
for pair in bwrap:bubblewrap unshare:util-linux prlimit:util-linux setsid:util-linux mount:mount; do
  prog=${pair%%:*}
  pkg=${pair#*:}
  if ! have "$prog"; then
    case " $missing " in *" $pkg "*) ;; *) missing="$missing $pkg" ;; esac
  fi
done
if [ -n "$missing" ]; then
  if can_install; then
    echo "setup: installing$missing from the distribution's packages" >&2
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq $missing >/dev/null 2>&1 \
      || { $SUDO apt-get update -qq >/dev/null 2>&1 && $SUDO apt-get install -y -qq $missing >/dev/null 2>&1; } \
      || echo "setup: apt-get install$missing failed; the bubblewrap sandbox may be unavailable" >&2
  else
    echo "setup: missing$missing; install them to use the bubblewrap sandbox" >&2
  fi
fi

if have bwrap; then
  # The namespaces the sandbox uses, as the sandbox uses them.
  if ! bwrap --unshare-user --uid 1000 --gid 1000 --unshare-pid --unshare-net \
       --cap-drop ALL --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib \
       --symlink usr/lib64 /lib64 --dev /dev --proc /proc --new-session --die-with-parent \
       /usr/bin/true 2>/dev/null; then
    echo "setup: bwrap is installed but cannot create a user namespace here" \
         "(user.max_user_namespaces is 0, unprivileged user namespaces are disabled," \
         "or a container forbids them); smith falls back to docker or local" >&2
  fi
fi

# Budgets for a command's whole process tree use control groups where smith
# may make them (root, or a delegated cgroup v2 subtree); say which.
own=$(sed -n 's/^0:://p' /proc/self/cgroup 2>/dev/null | head -n 1)
if [ -n "$own" ] && [ -w "/sys/fs/cgroup$own" ] && grep -qw memory "/sys/fs/cgroup$own/cgroup.controllers" 2>/dev/null; then
  :
elif [ -w /sys/fs/cgroup/memory ] && [ -w /sys/fs/cgroup/pids ]; then
  :
else
  echo "setup: no writable cgroup memory/pids controllers; process-tree budgets fall back to rlimits" >&2
fi
if have docker && docker info >/dev/null 2>&1; then
  bash "$(dirname "$0")/docker-base.sh" \
    || echo "setup: building the local docker base image failed; the docker sandbox needs python:<version>-slim" >&2
fi
exit 0
