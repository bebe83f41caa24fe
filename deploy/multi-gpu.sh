#!/usr/bin/env bash
# One voxwire replica per GPU on this host, all behind the same balancer: the engine owns one device, so a
# host with N GPUs runs N servers, replica i on GPU i (CUDA_VISIBLE_DEVICES) and port BASE_PORT + i.
#
#   deploy/multi-gpu.sh [--dry-run] [voxwire serve flags...]
#
#   GPUS=0,1,2,3     the devices, one replica each (default: every GPU that nvidia-smi lists)
#   BASE_PORT=8765   replica i listens on BASE_PORT + i
#   PYTHON=python3   the interpreter that has voxwire installed
#   VOXWIRE_*        any setting, for every replica (VOXWIRE_HOST, VOXWIRE_TOKENS, ...); VOXWIRE_DEVICE
#                    defaults to cuda (each replica sees only its own GPU, as device 0)
#
# It prints the upstream lines for deploy/nginx/voxwire.conf, starts the replicas, and waits. SIGTERM or
# SIGINT goes to every replica, and each drains (docs/operations.md); the script exits when all have,
# with the first non-zero status among them. If one replica exits by itself (its engine failed), the
# others are drained too and the script exits non-zero: run it under a supervisor that restarts it, or
# use one systemd unit per GPU instead (docs/operations.md, "One process per GPU").
set -euo pipefail

dry_run=0
if [ "${1:-}" = "--dry-run" ]; then
  dry_run=1
  shift
fi
base_port=${BASE_PORT:-8765}
python=${PYTHON:-python3}
if [ -n "${GPUS:-}" ]; then
  IFS=, read -ra gpus <<< "$GPUS"
else
  if ! command -v nvidia-smi >/dev/null; then
    echo "multi-gpu.sh: no nvidia-smi here; name the devices with GPUS=0,1,..." >&2
    exit 2
  fi
  mapfile -t gpus < <(nvidia-smi --query-gpu=index --format=csv,noheader)
fi
if [ "${#gpus[@]}" = 0 ]; then
  echo "multi-gpu.sh: no GPU found; name the devices with GPUS=0,1,..." >&2
  exit 2
fi

echo "# upstream lines for deploy/nginx/voxwire.conf:"
for i in "${!gpus[@]}"; do
  echo "    server 127.0.0.1:$((base_port + i)) max_fails=1 fail_timeout=10s;  # GPU ${gpus[$i]}"
done

pids=()
for i in "${!gpus[@]}"; do
  port=$((base_port + i))
  command=(env "CUDA_VISIBLE_DEVICES=${gpus[$i]}" "VOXWIRE_DEVICE=${VOXWIRE_DEVICE:-cuda}"
           "$python" -m voxwire.server --port "$port" "$@")
  if [ "$dry_run" = 1 ]; then
    echo "${command[*]}"
    continue
  fi
  "${command[@]}" &
  pids+=("$!")
done
[ "$dry_run" = 1 ] && exit 0

stop() {
  kill -TERM "${pids[@]}" 2>/dev/null || true
}
trap stop TERM INT

status=0
while [ "${#pids[@]}" -gt 0 ]; do
  ended=
  code=0
  wait -n -p ended "${pids[@]}" || code=$?
  [ -n "${ended:-}" ] || continue  # a signal ran the trap; no replica ended
  left=()
  for pid in "${pids[@]}"; do
    [ "$pid" = "$ended" ] || left+=("$pid")
  done
  pids=("${left[@]}")
  if [ "$code" -ne 0 ] && [ "$status" = 0 ]; then
    status=$code
    stop  # one replica failed: drain the others, and let the supervisor restart the set
  fi
done
exit "$status"
