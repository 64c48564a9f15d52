#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for the sweep's Slurm tests (REFERENCE.md §7):
# installs slurm-wlm and munge from Debian, writes a minimal slurm.conf (this host, all its
# CPUs and memory, no cgroups), starts munged, slurmctld and slurmd, and waits until the
# node is idle. Idempotent: a cluster already answering is left as it is. Needs root; works
# in a container without systemd.
set -euo pipefail

if command -v sinfo >/dev/null 2>&1 && sinfo -h -o %T 2>/dev/null | grep -qE 'idle|mixed|alloc'; then
  echo "slurm: already up ($(sinfo -h -o '%N %T %c CPUs'))"
  exit 0
fi

if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q slurm-wlm munge
fi

host=$(hostname -s)
# slurmctld and slurmd find each other by this name; some containers do not resolve it.
getent hosts "$host" >/dev/null || echo "127.0.0.1 $host" >> /etc/hosts
cpus=$(nproc)
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))
conf_dir=/etc/slurm
state=/var/spool/slurmctld
spool=/var/spool/slurmd
mkdir -p "$conf_dir" "$state" "$spool" /var/log/slurm /run/munge /etc/munge /var/lib/munge /var/log/munge

# munge: a key, the daemon run as root (no systemd to drop privileges for us).
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chmod 0400 /etc/munge/munge.key
if ! pgrep -x munged >/dev/null; then
  munged --force --num-threads=2
fi

cat > "$conf_dir/slurm.conf" <<CONF
ClusterName=synthscale-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$state
SlurmdSpoolDir=$spool
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MaxArraySize=10001
MinJobAge=300
KillWait=30
JobRequeue=1
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
# Slurm 22.05 wants a cgroup.conf only when a cgroup plugin is used; none is.

if ! pgrep -x slurmctld >/dev/null; then
  slurmctld
fi
if ! pgrep -x slurmd >/dev/null; then
  slurmd
fi

for _ in $(seq 1 60); do
  if sinfo -h -o %T 2>/dev/null | grep -qE 'idle|mixed|alloc'; then
    echo "slurm: up ($(sinfo -h -o '%N %T %c CPUs'))"
    exit 0
  fi
  scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
  sleep 1
done
echo "slurm: the node did not become idle; see /var/log/slurm/" >&2
sinfo >&2 || true
tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
exit 1
