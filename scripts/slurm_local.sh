#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, from Debian's slurm-wlm and munge, for tests and
# for trying the examples in examples/hpc/ (docs/hpc.md, "A SLURM on one machine").
#
#   eval "$(bash scripts/slurm_local.sh up)"   # start; prints `export SLURM_CONF=...`
#   sbatch --wrap hostname; squeue
#   bash scripts/slurm_local.sh down            # stop the daemons it started
#   bash scripts/slurm_local.sh status
#
# Everything lives in one folder (SLURM_LOCAL_DIR, default /var/tmp/bidsapp-slurm): its own
# munge key and socket, slurm.conf, state, spool and logs; the system's /etc/munge and
# /etc/slurm are not touched, and nothing else on the machine is stopped.  The node is this
# machine: its hostname, its CPUs and its memory less 2 GB.  Ports 6917/6918 (SLURM_LOCAL_PORT
# to move them) stay clear of a real cluster's 6817/6818.  Needs root (slurmd runs the jobs as
# their owner) and the packages slurm-wlm and munge (installed when missing, on Debian).
set -euo pipefail

dir="${SLURM_LOCAL_DIR:-/var/tmp/bidsapp-slurm}"
ctld_port="${SLURM_LOCAL_PORT:-6917}"
conf="$dir/slurm.conf"
say() { echo "slurm_local: $*" >&2; }
die() { echo "slurm_local: error: $*" >&2; exit 1; }

pid_alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_pidfile() {  # stop the daemon whose pid file this is, waiting up to 20 s
  local file="$1" pid
  pid_alive "$file" || { rm -f "$file"; return 0; }
  pid="$(cat "$file")"
  kill "$pid"
  for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  rm -f "$file"
}

down() {
  stop_pidfile "$dir/slurmd.pid"
  stop_pidfile "$dir/slurmctld.pid"
  stop_pidfile "$dir/munged.pid"
  say "stopped (state kept in $dir; rm -rf it to forget the jobs)"
}

install_packages() {
  command -v slurmctld >/dev/null 2>&1 && command -v munged >/dev/null 2>&1 && return 0
  command -v apt-get >/dev/null 2>&1 || die "slurmctld/munged missing and no apt-get: install SLURM and munge"
  say "installing slurm-wlm and munge (apt-get)"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >&2
}

write_config() {
  local host cpus mem_mb
  host="$(hostname -s)"
  cpus="$(nproc)"
  mem_mb=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) - 2048 ))
  mkdir -p "$dir/ctld" "$dir/spool" "$dir/log"
  cat >"$conf" <<EOF
# Written by scripts/slurm_local.sh for $host: $cpus CPUs, ${mem_mb} MB for jobs.
ClusterName=bidsapp-local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$((ctld_port + 1))
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge.socket
StateSaveLocation=$dir/ctld
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
# A job whose dependency failed or was cancelled is cancelled too, not left pending.
DependencyParameters=kill_invalid_depend
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/linux
# Finished jobs stay visible to scontrol for an hour (their times, their exit codes).
MinJobAge=3600
KillWait=30
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

up() {
  [[ "$(id -u)" == 0 ]] || die "run as root: slurmd starts each job as the user who submitted it"
  install_packages
  mkdir -p "$dir"
  chmod 700 "$dir"
  write_config
  # munge: its own key (1 KB of random bytes), socket and files.
  if [[ ! -s "$dir/munge.key" ]]; then
    dd if=/dev/urandom of="$dir/munge.key" bs=1024 count=1 status=none
  fi
  chmod 400 "$dir/munge.key"
  if ! pid_alive "$dir/munged.pid"; then
    munged --force --key-file="$dir/munge.key" --socket="$dir/munge.socket" \
      --pid-file="$dir/munged.pid" --log-file="$dir/log/munged.log" \
      --seed-file="$dir/munge.seed" \
      || die "munged did not start; see $dir/log/munged.log"
  fi
  munge -S "$dir/munge.socket" -n | unmunge -S "$dir/munge.socket" >/dev/null \
    || die "munge cannot encode and decode a credential; see $dir/log/munged.log"
  if ! pid_alive "$dir/slurmctld.pid"; then
    slurmctld -f "$conf" || die "slurmctld did not start; see $dir/log/slurmctld.log"
  fi
  if ! pid_alive "$dir/slurmd.pid"; then
    slurmd -f "$conf" || die "slurmd did not start; see $dir/log/slurmd.log"
  fi
  # Up when the node takes jobs.  A node that slurmctld marked down while munged or slurmd
  # was away (not responding) is put back, as an administrator would.
  local state="" host
  host="$(hostname -s)"
  for i in $(seq 60); do
    state="$(SLURM_CONF="$conf" sinfo -h -N -o '%T' 2>/dev/null | head -1)"
    [[ "$state" == idle* || "$state" == mixed* || "$state" == allocated* ]] && break
    if [[ "$state" == down* || "$state" == drain* ]] && ((i % 5 == 0)); then
      SLURM_CONF="$conf" scontrol update NodeName="$host" State=RESUME 2>/dev/null || true
    fi
    sleep 1
  done
  [[ "$state" == idle* || "$state" == mixed* || "$state" == allocated* ]] \
    || die "the node is '${state:-unknown}' after 60 s; see $dir/log/slurmctld.log and slurmd.log"
  say "up: node $(hostname -s) ($(nproc) CPUs), state $state; config $conf"
  echo "export SLURM_CONF=$conf"
}

status() {
  local name
  for name in munged slurmctld slurmd; do
    if pid_alive "$dir/$name.pid"; then say "$name runs (pid $(cat "$dir/$name.pid"))"
    else say "$name is not running"; fi
  done
  [[ -f "$conf" ]] && SLURM_CONF="$conf" sinfo -N -l >&2 || true
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status   (see the header of this script)" >&2; exit 64 ;;
esac
