#!/usr/bin/env bash
# Turns a `smith run` output directory into what a cluster needs to shard
# the run: the repository's image with smith in it, saved as a file; the
# shared reference files; a Kubernetes Indexed Job and a Slurm array.
#
#   scripts/cluster-bundle.sh OUT N DEST [SMITH]
#
# OUT: a `smith run` output directory (repo.json, and baseline.json and
# coverage.json when the run got that far); N: the number of shards; DEST:
# where to write; SMITH: the smith binary (default: `smith` on PATH).
# Writes DEST/image.tar.gz (load with `docker load`, or push after
# `docker tag`), DEST/ref/, DEST/job.yaml and DEST/array.sbatch.
set -euo pipefail

if [ $# -lt 3 ]; then
  sed -n '2,13p' "$0" >&2
  exit 2
fi
OUT=$1 N=$2 DEST=$3
SMITH=${4:-$(command -v smith || true)}
[ -x "$SMITH" ] || { echo "cluster-bundle: no smith binary (pass it as the 4th argument)" >&2; exit 2; }
[ -f "$OUT/repo.json" ] || { echo "cluster-bundle: $OUT/repo.json missing: not a smith run directory" >&2; exit 2; }
case $N in ''|*[!0-9]*|0) echo "cluster-bundle: N must be a positive number, not '$N'" >&2; exit 2 ;; esac

field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$OUT/repo.json" "$1"; }
ROOT=$(field root)
NAME=$(field name)
mkdir -p "$DEST/ref"

# The repository's image, as its instances name it.
"$SMITH" --json env "$ROOT" --out "$OUT" --repo-name "$NAME" --image > "$DEST/env.json"
IMAGE=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["image"]["tag"])' "$DEST/env.json")

# The same image with smith in it, for shards that run inside it.
CTX=$(mktemp -d)
trap 'rm -rf "$CTX"' EXIT
cp "$SMITH" "$CTX/smith"
printf 'FROM %s\nCOPY smith /usr/local/bin/smith\n' "$IMAGE" > "$CTX/Dockerfile"
docker build -q -t "$IMAGE-cluster" "$CTX" >/dev/null
docker save "$IMAGE-cluster" | gzip > "$DEST/image.tar.gz"

for f in baseline.json coverage.json; do
  [ -f "$OUT/$f" ] && cp "$OUT/$f" "$DEST/ref/"
done

JOB=smith-$(echo "$NAME" | tr '/_.' '---' | tr 'A-Z' 'a-z')
cat > "$DEST/job.yaml" <<YAML
# kubectl apply -f job.yaml  (after loading $IMAGE-cluster on the nodes or
# pushing it to your registry and changing image: below); the volume
# smith-out must hold ref/ from this bundle.
apiVersion: batch/v1
kind: Job
metadata:
  name: $JOB
spec:
  completionMode: Indexed
  completions: $N
  parallelism: $N
  backoffLimitPerIndex: 2
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: smith
          image: $IMAGE-cluster
          imagePullPolicy: IfNotPresent
          env:
            - {name: N, value: "$N"}
          command: ["/bin/sh", "-c"]
          args:
            - |
              set -e
              OUT=/out/shard-\$JOB_COMPLETION_INDEX
              mkdir -p "\$OUT"
              cp /out/ref/baseline.json /out/ref/coverage.json "\$OUT"/ 2>/dev/null || true
              exec smith --json run /testbed --repo-name $NAME --out "\$OUT" \\
                --sandbox local --workers 2 --shard "\$JOB_COMPLETION_INDEX/\$N"
          resources:
            requests: {cpu: "2", memory: 4Gi}
          volumeMounts:
            - {name: out, mountPath: /out}
      volumes:
        - name: out
          persistentVolumeClaim: {claimName: smith-out}
YAML

cat > "$DEST/array.sbatch" <<SBATCH
#!/bin/bash
# sbatch array.sbatch  (from this directory; needs apptainer on the nodes)
#SBATCH --job-name=$JOB
#SBATCH --array=0-$((N - 1))
#SBATCH --cpus-per-task=2
#SBATCH --output=logs/smith-%A_%a.out
set -euo pipefail
[ -f image.sif ] || apptainer build image.sif docker-archive://image.tar.gz
I=\$SLURM_ARRAY_TASK_ID
OUT=\$PWD/out/shard-\$I
mkdir -p "\$OUT"
cp ref/baseline.json ref/coverage.json "\$OUT"/ 2>/dev/null || true
srun apptainer exec --writable-tmpfs --pwd /testbed image.sif \\
  smith --json run /testbed --repo-name $NAME --out "\$OUT" --sandbox local \\
  --workers "\$SLURM_CPUS_PER_TASK" --shard "\$I/$N"
SBATCH
echo "cluster-bundle: $DEST: image.tar.gz ($IMAGE-cluster), ref/, job.yaml, array.sbatch" >&2
