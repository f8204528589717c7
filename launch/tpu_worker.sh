#!/usr/bin/env bash
# What launch/tpu_pod.py runs on each TPU VM worker (copied there with the code).
# Run from the code directory (~/hypernets):
#
#   bash launch/tpu_worker.sh provision [EXTRAS]   Python $PYTHON_VERSION in $VENV (uv) + this
#                                                  library (with [EXTRAS], e.g. gcs) + jax[tpu]
#   bash launch/tpu_worker.sh preflight WORKDIR    checks Python, jax, libtpu, the library
#                                                  and that WORKDIR can be written; one line
#   bash launch/tpu_worker.sh start I WORKDIR SCRIPT ARGS...
#                                                  runs `python SCRIPT ARGS` detached (setsid,
#                                                  nohup: a dropped ssh does not end it); output
#                                                  in $RUN/train.log, copied to
#                                                  WORKDIR/logs/worker-I.log at the end, exit
#                                                  status in $RUN/status
#   bash launch/tpu_worker.sh attach [FROM_LINE]   prints the log from line FROM_LINE (default
#                                                  1) as it grows; exits with the run's status
#
# Why uv: the TPU runtime images are Ubuntu 22.04 with Python 3.10, and jax >= 0.7
# needs Python >= 3.11. uv is one static binary installed without root; it
# fetches a standalone CPython of the version asked for, the same on every image,
# without apt (which on a fresh TPU VM often waits for unattended-upgrades'
# dpkg lock), and installs jax[tpu] and its libtpu wheel from PyPI.
set -uo pipefail

PYTHON_VERSION="${HYPERNETS_PYTHON_VERSION:-3.12}"
VENV="${HYPERNETS_VENV:-$HOME/hypernets-venv}"
RUN="${HYPERNETS_RUN_DIR:-$HOME/hypernets-run}"
UV="${HYPERNETS_UV:-$HOME/.local/bin/uv}"
SELF="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"

case "${1:-}" in
  provision)
    set -e
    if [ ! -x "$UV" ]; then
      curl -LsSf https://astral.sh/uv/install.sh | env UV_NO_MODIFY_PATH=1 sh
    fi
    "$UV" venv --allow-existing --python "$PYTHON_VERSION" "$VENV"
    spec="."
    if [ -n "${2:-}" ]; then spec=".[$2]"; fi
    "$UV" pip install --python "$VENV/bin/python" -e "$spec" "jax[tpu]>=0.10.0"
    ;;

  preflight)
    exec "$VENV/bin/python" - "${2:?workdir}" <<'EOF'
import importlib.metadata as metadata
import sys

workdir = sys.argv[1]
problems, found = [], {}
if sys.version_info < (3, 11):
  problems.append(f"Python {sys.version.split()[0]} is older than 3.11, which jax needs")
for package in ("jax", "jaxlib", "libtpu"):
  try:
    found[package] = metadata.version(package)
  except metadata.PackageNotFoundError:
    problems.append(f"{package} is not installed")
if "jax" in found and tuple(int(p) for p in found["jax"].split(".")[:2]) < (0, 10):
  problems.append(f"jax {found['jax']} is older than 0.10")
try:
  from hypernets.training import files  # imports jax; touches no TPU
  files.check_writable(workdir)
except Exception as e:  # pylint: disable=broad-except
  problems.append(f"workdir {workdir} cannot be written: {type(e).__name__}: {e}"[:300])
if problems:
  print("pre-flight failed: " + "; ".join(problems))
  sys.exit(1)
print(f"pre-flight ok: Python {sys.version.split()[0]}, "
      + ", ".join(f"{k} {v}" for k, v in found.items()) + f", workdir {workdir} writable")
EOF
    ;;

  start)
    worker="${2:?worker}"; workdir="${3:?workdir}"; shift 3
    mkdir -p "$RUN"
    rm -f "$RUN/status" "$RUN/status.tmp" "$RUN/train.log"
    touch "$RUN/train.log"
    nohup setsid bash "$SELF" _run "$worker" "$workdir" "$@" > /dev/null 2>&1 < /dev/null &
    echo "worker $worker: started (pid $!), log in $RUN/train.log"
    ;;

  _run)
    worker="$2"; workdir="$3"; shift 3
    HYPERNETS_DISTRIBUTED=1 "$VENV/bin/python" "$@" > "$RUN/train.log" 2>&1
    status=$?
    "$VENV/bin/python" - "$RUN/train.log" "$workdir" "$worker" <<'EOF' || true
import sys
from hypernets.training import files
log, workdir, worker = sys.argv[1:]
with open(log, "rb") as f:
  data = f.read()
files.makedirs(files.join(workdir, "logs"))
files.write_bytes_atomic(files.join(workdir, "logs", f"worker-{worker}.log"), data)
EOF
    echo "$status" > "$RUN/status.tmp" && mv "$RUN/status.tmp" "$RUN/status"
    ;;

  attach)
    next="${2:-1}"
    if [ ! -f "$RUN/train.log" ]; then
      echo "no run was started on this worker ($RUN/train.log is missing)" >&2
      exit 2
    fi
    while :; do
      finished=0
      if [ -f "$RUN/status" ]; then finished=1; fi  # checked first: the log is then complete
      if [ "$finished" = 1 ]; then
        sed -n "${next},\$p" "$RUN/train.log"
        break
      fi
      total=$(wc -l < "$RUN/train.log")
      if [ "$total" -ge "$next" ]; then
        sed -n "${next},${total}p" "$RUN/train.log"
        next=$((total + 1))
      fi
      sleep 2
    done
    exit "$(cat "$RUN/status")"
    ;;

  *)
    sed -n '2,20p' "$0" >&2
    exit 2
    ;;
esac
