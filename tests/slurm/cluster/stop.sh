#!/usr/bin/env bash
# Stop the cluster started by start.sh: cancel its jobs, then stop each daemon by its pid file (never by name),
# and remove the configs start.sh wrote, so that Slurm commands here no longer wait for a controller that is
# gone. Accounting data and Slurm state are kept; SLURM_TEST_PURGE=1 deletes both.
set -uo pipefail
[ "$(id -u)" = 0 ] || { echo "stop.sh must run as root" >&2; exit 1; }
alive() { local pid name; pid=$(cat "$1" 2>/dev/null) || return 1; [ -n "$pid" ] || return 1
  name=$(basename "$1" .pid); [ "$name" = mysqld ] && name=mariadbd
  [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$name" ]; }
stop_pidfile() {
  local name=$1 pf=$2 pid
  alive "$pf" || return 0
  pid=$(cat "$pf"); kill "$pid"
  for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || { echo "[slurm-test] $name stopped"; rm -f "$pf"; return 0; }; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null; echo "[slurm-test] $name did not stop in 30 s: killed"; rm -f "$pf"
}
if alive /run/slurm/slurmctld.pid; then
  jobs=$(timeout 10 squeue -h -o %i 2>/dev/null || true)
  [ -z "$jobs" ] || scancel $jobs 2>/dev/null || true
  for _ in $(seq 50); do [ -z "$(timeout 5 squeue -h -t running,completing 2>/dev/null)" ] && break; sleep 0.1; done
fi
stop_pidfile slurmd /run/slurm/slurmd.pid &
stop_pidfile slurmctld /run/slurm/slurmctld.pid &
stop_pidfile slurmdbd /run/slurm/slurmdbd.pid &
wait
if [ "${SLURM_TEST_PURGE:-0}" = 1 ] && alive /run/mysqld/mysqld.pid; then
  mariadb -e 'DROP DATABASE IF EXISTS slurm_acct_db'
fi
stop_pidfile mariadbd /run/mysqld/mysqld.pid &
stop_pidfile munged /run/munge/munged.pid &
wait
[ "${SLURM_TEST_PURGE:-0}" = 1 ] && rm -rf /var/lib/slurm/slurmctld/* /var/lib/slurm/slurmd/*
for conf in /etc/slurm/slurm.conf /etc/slurm/gres.conf /etc/slurm/slurmdbd.conf; do
  grep -q "^# selfalign-test-cluster:" "$conf" 2>/dev/null && rm -f "$conf"
done
exit 0
