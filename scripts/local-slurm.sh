#!/usr/bin/env bash
# Install and start a single-node SLURM from Debian's packages, for CI and for trying profiles/slurm.
#
#   sudo scripts/local-slurm.sh            # install (once), configure, start, wait until the node is idle
#   sudo scripts/local-slurm.sh --check    # only report whether the local SLURM is up (exit 0/1)
#
# What it sets up (Debian 12: Slurm 22.05): munge with a random key; slurmctld and slurmd on this host
# (no systemd needed: the daemons are started directly); no accounting database, so job status comes
# from squeue (finished jobs stay visible for MinJobAge=600 s); one default partition
# ($BICROSS_SLURM_PARTITION, default "debug") holding this node with all its CPUs and most of its
# memory; a `gpu` GRES of $BICROSS_SLURM_GPUS (default 4) placeholder devices, so GPU requests
# (`sbatch --gpus=2`, Snakemake's `gpu` resource) schedule by count on a machine without GPUs. GRES
# needs `AutoDetect=off` and `File=` naming real files (a count without files leaves the node INVAL);
# jobs then see SLURM_GPUS_ON_NODE but no CUDA_VISIBLE_DEVICES.
#
# Idempotent: packages are installed only when missing, the configuration is rewritten only when it
# changes (then the daemons are restarted), running daemons are left alone. Needs root.
set -euo pipefail

PARTITION=${BICROSS_SLURM_PARTITION:-debug}
NGPUS=${BICROSS_SLURM_GPUS:-4}
GPU_DIR=${BICROSS_SLURM_GPU_DIR:-/var/lib/bicross-slurm/gpus}
CONF_DIR=/etc/slurm
WAIT=${BICROSS_SLURM_WAIT:-90}

say() { echo "local-slurm: $*"; }

node_state() { sinfo -h -N -o %t 2>/dev/null | head -1 || true; }

if [ "${1:-}" = --check ]; then
  state=$(node_state)
  say "node state: ${state:-none}"
  case "$state" in idle*|mix*|alloc*) exit 0 ;; *) exit 1 ;; esac
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "local-slurm: must run as root (it installs packages and starts daemons)" >&2
  exit 1
fi

# --- packages -----------------------------------------------------------------------------------------
missing=()
for cmd in slurmctld slurmd sinfo munged; do
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("$cmd")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing slurmctld slurmd slurm-client munge (missing: ${missing[*]})"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi

host=$(hostname -s)
cpus=$(nproc)
mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
real_mem=$(( mem_mb > 4096 ? mem_mb - 2048 : mem_mb * 3 / 4 ))   # leave the OS some room

# --- munge --------------------------------------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
  say "creating /etc/munge/munge.key"
  mkdir -p /etc/munge
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  say "starting munged"
  runuser -u munge -- /usr/sbin/munged --force
  for _ in $(seq 20); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.5; done
fi

# --- configuration --------------------------------------------------------------------------------------
mkdir -p "$CONF_DIR" "$GPU_DIR" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
gpu_files=""
if [ "$NGPUS" -gt 0 ]; then
  for i in $(seq 0 $(( NGPUS - 1 ))); do touch "$GPU_DIR/gpu$i"; done
  gpu_files="$GPU_DIR/gpu[0-$(( NGPUS - 1 ))]"
fi

conf=$(mktemp)
gres=$(mktemp)
trap 'rm -f "$conf" "$gres"' EXIT
cat >"$conf" <<EOF
# Written by bicross scripts/local-slurm.sh: a single-node SLURM for tests.
ClusterName=bicross
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
MpiDefault=none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=600
ReturnToService=2
$( [ "$NGPUS" -gt 0 ] && echo "GresTypes=gpu" )
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${real_mem}$( [ "$NGPUS" -gt 0 ] && echo " Gres=gpu:${NGPUS}" ) State=UNKNOWN
PartitionName=${PARTITION} Nodes=${host} Default=YES MaxTime=INFINITE State=UP
EOF
{
  echo "# Written by bicross scripts/local-slurm.sh: placeholder GPUs, for scheduling by count only."
  echo "AutoDetect=off"
  [ "$NGPUS" -gt 0 ] && echo "NodeName=${host} Name=gpu File=${gpu_files}"
} >"$gres"

changed=0
if ! cmp -s "$conf" "$CONF_DIR/slurm.conf"; then cp "$conf" "$CONF_DIR/slurm.conf"; changed=1; fi
if ! cmp -s "$gres" "$CONF_DIR/gres.conf"; then cp "$gres" "$CONF_DIR/gres.conf"; changed=1; fi
chmod 644 "$CONF_DIR/slurm.conf" "$CONF_DIR/gres.conf"

# --- daemons --------------------------------------------------------------------------------------------
running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

if [ "$changed" = 1 ] && { running /run/slurmctld.pid || running /run/slurmd.pid; }; then
  say "configuration changed: restarting the SLURM daemons"
  scontrol shutdown >/dev/null 2>&1 || true
  for _ in $(seq 30); do running /run/slurmctld.pid || running /run/slurmd.pid || break; sleep 0.5; done
fi
if ! running /run/slurmctld.pid; then
  say "starting slurmctld"
  /usr/sbin/slurmctld
fi
if ! running /run/slurmd.pid; then
  say "starting slurmd"
  /usr/sbin/slurmd
fi

# --- wait for the node ----------------------------------------------------------------------------------
deadline=$(( $(date +%s) + WAIT ))
while :; do
  state=$(node_state)
  case "$state" in
    idle*|mix*|alloc*) break ;;
    down*|drain*|inval*)
      scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true ;;
  esac
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "local-slurm: node $host is '${state:-absent}' after ${WAIT}s; see /var/log/slurm/*.log" >&2
    sinfo -N -l >&2 || true
    exit 1
  fi
  sleep 1
done
say "ready: partition $PARTITION, node $host ($cpus CPUs, ${real_mem} MB, $NGPUS placeholder GPUs), state $state"
