#!/usr/bin/env bash
# Run smith's sharded pipeline as a Slurm array job on this machine, gather
# the shards and check them against an unsharded run.
#
# Installs Debian's slurm-wlm and munge, writes a single-node slurm.conf,
# starts munged, slurmctld and slurmd, submits `smith run --shard $I/$N` as
# an array of N tasks over the demo repository, waits, concatenates the
# shards' JSONL outputs sorted by id, and compares them with `smith run`
# without --shard. Run as root from the repository root:
#
#   scripts/slurm-demo.sh [N] [work-dir]
#
# Environment: SMITH (the smith binary, default target/release/smith, built
# if missing), STRATEGIES (candidate strategies, kept small so the demo is
# quick), KEEP_SLURM=1 to leave the daemons running afterwards.
set -euo pipefail

N=${1:-3}
WORK=${2:-/tmp/smith-slurm-demo}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SMITH=${SMITH:-$ROOT/target/release/smith}
STRATEGIES=${STRATEGIES:-func_pm_remove_break,func_pm_const_flip_bool,func_pm_ctrl_invert_if,func_pm_remove_wrapper}
CACHE=$WORK/env-cache
SLURM_ETC=/etc/slurm

log() { printf '[slurm-demo %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

if [ ! -x "$SMITH" ]; then
  log "building smith"
  (cd "$ROOT" && cargo build --release --bin smith)
fi

# 1. Packages.
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  log "installing slurm-wlm and munge"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq slurm-wlm munge >/dev/null
fi
log "slurm-wlm $(dpkg-query -W -f '${Version}' slurm-wlm), munge $(dpkg-query -W -f '${Version}' munge)"

# 2. Munge (authentication between the Slurm daemons).
if [ ! -s /etc/munge/munge.key ]; then
  mkdir -p /etc/munge
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown munge:munge /etc/munge/munge.key 2>/dev/null || true
chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
if ! pgrep -x munged >/dev/null; then
  log "starting munged"
  runuser -u munge -- munged || munged --force
fi
munge -n | unmunge >/dev/null && log "munge works"

# 3. A single-node cluster: this machine is controller and compute node.
HOST=$(hostname -s)
CPUS=$(nproc)
MEM=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
mkdir -p "$SLURM_ETC" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat > "$SLURM_ETC/slurm.conf" <<CONF
ClusterName=smith-demo
SlurmctldHost=$HOST
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmUser=root
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
if ! pgrep -x slurmctld >/dev/null; then
  log "starting slurmctld"
  slurmctld
fi
if ! pgrep -x slurmd >/dev/null; then
  log "starting slurmd"
  slurmd
fi
for _ in $(seq 30); do
  sinfo -h -o '%T' 2>/dev/null | grep -qE 'idle|mix|alloc' && break
  sleep 1
done
sinfo

# 4. The unsharded reference run (also builds the environment and the
#    baseline and coverage map the shards share).
rm -rf "$WORK/all" "$WORK"/shard-*
mkdir -p "$WORK"
log "unsharded run"
"$SMITH" --json run "$ROOT/examples/demo-repo" --out "$WORK/all" --cache-dir "$CACHE" \
  --strategies "$STRATEGIES" --baseline-runs 1 --workers 1 > "$WORK/all.summary.json"

# 5. The array job: task I runs shard I/N into its own directory.
cat > "$WORK/smith-array.sbatch" <<JOB
#!/bin/bash
#SBATCH --job-name=smith
#SBATCH --array=0-$((N - 1))
#SBATCH --cpus-per-task=1
#SBATCH --output=$WORK/slurm-%A_%a.out
set -euo pipefail
I=\$SLURM_ARRAY_TASK_ID
OUT=$WORK/shard-\$I
mkdir -p "\$OUT"
cp $WORK/all/baseline.json $WORK/all/coverage.json "\$OUT"/
exec "$SMITH" --json run "$ROOT/examples/demo-repo" --out "\$OUT" --cache-dir "$CACHE" \\
  --strategies "$STRATEGIES" --baseline-runs 1 --workers 1 --shard "\$I/$N"
JOB
JOB_ID=$(sbatch --parsable "$WORK/smith-array.sbatch")
log "submitted array job $JOB_ID ($N tasks)"
while squeue -h -j "$JOB_ID" 2>/dev/null | grep -q .; do
  squeue -h -j "$JOB_ID" -o '%i %T %M' | tr '\n' ';'; echo
  sleep 5
done
for i in $(seq 0 $((N - 1))); do
  log "task $i: $(grep -o '"instances": [0-9]*' "$WORK/slurm-${JOB_ID}_$i.out" || tail -3 "$WORK/slurm-${JOB_ID}_$i.out")"
done

# 6. Gather: cat + sort by id, then compare with the unsharded run (fields
#    that are the same in any run: ids, verdicts, tests, patches, statements).
cat > "$WORK/gather.py" <<'PY'
import json, sys
key, fields = sys.argv[1], sys.argv[2:]
rows = [json.loads(l) for l in sys.stdin if l.strip()]
rows.sort(key=lambda r: r[key])
for r in rows:
    print(json.dumps({f: r.get(f) for f in fields}, sort_keys=True))
PY
gather() { python3 "$WORK/gather.py" "$@"; }
status=0
check() { # file key fields... (key is also the first field)
  local file=$1
  shift
  cat "$WORK"/shard-*/"$file" | gather "$@" > "$WORK/gathered.$file"
  gather "$@" < "$WORK/all/$file" > "$WORK/unsharded.$file"
  if cmp -s "$WORK/gathered.$file" "$WORK/unsharded.$file"; then
    log "$file: $(wc -l < "$WORK/gathered.$file") records, shards == unsharded"
  else
    log "$file: DIFFERENT"; diff "$WORK/gathered.$file" "$WORK/unsharded.$file" > "$WORK/diff.$file" || true
    head -20 "$WORK/diff.$file"
    status=1
  fi
}
check candidates.jsonl id id strategy patch
check validations.jsonl candidate_id candidate_id verdict FAIL_TO_PASS PASS_TO_PASS
check instances.jsonl instance_id instance_id patch FAIL_TO_PASS PASS_TO_PASS problem_statement

if [ "${KEEP_SLURM:-0}" != 1 ]; then
  log "stopping slurmd and slurmctld"
  scontrol shutdown >/dev/null 2>&1 || true
fi
exit $status
