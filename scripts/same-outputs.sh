#!/usr/bin/env bash
# Check that two smith binaries give the same records: run both on one
# repository with the same seed and settings, then compare the candidates,
# combined candidates and instances (sorted; `created_at` left out).
#
#   scripts/same-outputs.sh OLD_SMITH NEW_SMITH REPO [extra `smith run` options]
#
# For a behaviour-preserving change, build the binary before and after it
# and run this on the demo repository and a few real projects.
set -euo pipefail
old=$1 new=$2 repo=$3
shift 3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for side in old new; do
    bin=${!side}
    "$bin" run "$repo" --out "$work/$side" --seed 7 --sandbox local "$@" >"$work/$side.log" 2>&1 ||
        { cat "$work/$side.log"; exit 1; }
done
python3 - "$work/old" "$work/new" <<'PY'
import json, os, sys

def records(d, name, drop):
    path = os.path.join(d, name)
    if not os.path.exists(path):
        return []
    out = []
    for line in open(path, encoding="utf-8"):
        r = json.loads(line)
        for k in drop:
            r.pop(k, None)
        out.append(json.dumps(r, sort_keys=True))
    return sorted(out)

old, new = sys.argv[1], sys.argv[2]
same = True
for name, drop in [("candidates.jsonl", []), ("combined.jsonl", []), ("instances.jsonl", ["created_at"])]:
    a, b = records(old, name, drop), records(new, name, drop)
    verdict = "identical" if a == b else "DIFFERENT"
    same &= a == b
    print(f"{name}: {len(a)} vs {len(b)} records, {verdict}")
sys.exit(0 if same else 1)
PY
