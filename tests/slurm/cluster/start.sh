#!/usr/bin/env bash
# Start a one-node Slurm with accounting (munge, MariaDB, slurmdbd, slurmctld, slurmd) as root, without
# systemd. Debian packages, installed by `install.sh --test`. Idempotent: rewrites the configs, starts only
# the daemons that are not running, and returns once the node is idle.
#   Partitions: cpu (default) and gpu, both on node "localhost", which declares fake A100s as GRES.
#   Environment: SLURM_TEST_ACCOUNT (default selfalign), SLURM_TEST_GPUS (default 4), SLURM_TEST_CPUS
#   (default 64), SLURM_TEST_MEM_MB (default 1000000): what the node declares (config_overrides).
#   Logs: /var/log/slurm/, /var/log/mysql/error.log.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ACCOUNT="${SLURM_TEST_ACCOUNT:-selfalign}"
GPUS="${SLURM_TEST_GPUS:-4}"
CPUS="${SLURM_TEST_CPUS:-64}"
REALMEM="${SLURM_TEST_MEM_MB:-1000000}"
DBPASS="slurmtest"
CLUSTER=selfalign
log() { echo "[slurm-test ${SECONDS}s] $*"; }

[ "$(id -u)" = 0 ] || { echo "start.sh must run as root" >&2; exit 1; }
for bin in munged slurmctld slurmd slurmdbd mariadbd sbatch sacct; do
  command -v "$bin" >/dev/null || [ -x "/usr/sbin/$bin" ] || { echo "missing $bin: run 'bash install.sh --test' as root" >&2; exit 1; }
done

# ---- munge ----
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if [ ! -s /etc/munge/munge.key ]; then
  if command -v mungekey >/dev/null; then mungekey --create --keyfile=/etc/munge/munge.key --force
  else dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; fi
fi
chown munge:munge /etc/munge /etc/munge/munge.key; chmod 700 /etc/munge; chmod 400 /etc/munge/munge.key
munge_ok() { local token; token=$(munge -n 2>/dev/null) && unmunge <<<"$token" >/dev/null 2>&1; }
if ! munge_ok; then
  runuser -u munge -- /usr/sbin/munged || { echo "munged failed; see /var/log/munge/munged.log" >&2; exit 1; }
  for _ in $(seq 50); do munge_ok && break; sleep 0.1; done
fi
munge_ok || { echo "munged is not answering" >&2; exit 1; }
log "munged up"

# ---- configs ----
mkdir -p /etc/slurm /run/slurm /var/log/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd
chown slurm:slurm /run/slurm /var/log/slurm /var/lib/slurm/slurmctld
# one fake GPU device file per GPU: character devices equal to /dev/null
for i in $(seq 0 $((GPUS - 1))); do [ -c /dev/fakegpu$i ] || mknod -m 666 /dev/fakegpu$i c 1 3; done
if [ "$GPUS" -gt 1 ]; then GRES_FILES="/dev/fakegpu[0-$((GPUS - 1))]"; else GRES_FILES=/dev/fakegpu0; fi
render() { sed -e "s|@CPUS@|$CPUS|g; s|@REALMEM@|$REALMEM|g; s|@GPU_COUNT@|$GPUS|g" \
               -e "s|@DBPASS@|$DBPASS|g; s|@GRES_FILES@|$GRES_FILES|g; s|@ACCT_[A-Z]*@||g" "$1"; }
# Never overwrite a Slurm configuration this script did not write (a real cluster's): they carry this marker.
MARKER="# selfalign-test-cluster:"
for conf in /etc/slurm/slurm.conf /etc/slurm/gres.conf /etc/slurm/slurmdbd.conf; do
  if [ -s "$conf" ] && ! grep -q "^$MARKER" "$conf"; then
    echo "$conf exists and was not written by this script: not touching a real Slurm configuration" >&2; exit 1
  fi
done
new_conf=$(render "$HERE/slurm.conf.in")
new_gres=$(render "$HERE/gres.conf.in")
conf_changed=0
[ "$new_conf" = "$(cat /etc/slurm/slurm.conf 2>/dev/null)" ] || conf_changed=1
[ "$new_gres" = "$(cat /etc/slurm/gres.conf 2>/dev/null)" ] || conf_changed=1
printf '%s\n' "$new_conf" > /etc/slurm/slurm.conf
printf '%s\n' "$new_gres" > /etc/slurm/gres.conf
chmod 644 /etc/slurm/slurm.conf /etc/slurm/gres.conf

# alive PIDFILE: the pid file names a live process with the daemon's name (pid files may outlive a reboot)
alive() { local pid name; pid=$(cat "$1" 2>/dev/null) || return 1; [ -n "$pid" ] || return 1
  name=$(basename "$1" .pid); [ "$name" = mysqld ] && name=mariadbd
  [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$name" ]; }
wait_for() { local end=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do [ $SECONDS -lt $end ] || return 1; sleep 0.2; done; }
for pf in /run/slurm/slurmctld.pid /run/slurm/slurmd.pid /run/slurm/slurmdbd.pid /run/mysqld/mysqld.pid; do
  [ -e "$pf" ] && ! alive "$pf" && rm -f "$pf"
done
stop_pidfile() { local pf=$1 pid; alive "$pf" || return 0; pid=$(cat "$pf"); kill "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done; kill -9 "$pid" 2>/dev/null || true; }
if [ "$conf_changed" = 1 ]; then  # a changed config needs restarted daemons, not `scontrol reconfigure`
  stop_pidfile /run/slurm/slurmd.pid; stop_pidfile /run/slurm/slurmctld.pid
fi

# ---- accounting: MariaDB (unix socket only) + slurmdbd ----
mkdir -p /run/mysqld /var/log/mysql; chown mysql:mysql /run/mysqld /var/log/mysql
[ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
if ! mariadb-admin ping >/dev/null 2>&1; then
  setsid /usr/sbin/mariadbd --user=mysql --skip-networking --innodb-buffer-pool-size=128M \
    --innodb-lock-wait-timeout=900 --log-error=/var/log/mysql/error.log </dev/null >/dev/null 2>&1 &
  wait_for 60 mariadb-admin ping || true
fi
mariadb-admin ping >/dev/null || { echo "mariadbd failed; see /var/log/mysql/error.log" >&2; exit 1; }
mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
            CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DBPASS';
            GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
render "$HERE/slurmdbd.conf.in" > /etc/slurm/slurmdbd.conf
chown slurm:slurm /etc/slurm/slurmdbd.conf; chmod 600 /etc/slurm/slurmdbd.conf
if ! alive /run/slurm/slurmdbd.pid; then
  /usr/sbin/slurmdbd || { echo "slurmdbd failed:" >&2; tail -5 /var/log/slurm/slurmdbd.log >&2; exit 1; }
fi
wait_for 60 timeout 10 sacctmgr -n list cluster || {
  echo "slurmdbd is not answering:" >&2; tail -5 /var/log/slurm/slurmdbd.log >&2; exit 1; }
# the cluster is registered before slurmctld starts (outputs captured first: `| grep -q` under pipefail is racy)
have=$(sacctmgr -n -P list cluster format=cluster)
grep -qxF "$CLUSTER" <<<"$have" || sacctmgr -i add cluster "$CLUSTER" >/dev/null
have=$(sacctmgr -n -P list account format=account)
grep -qxF "$ACCOUNT" <<<"$have" || sacctmgr -i add account "$ACCOUNT" Description=tests Organization=tests >/dev/null
have=$(sacctmgr -n -P list assoc user=root account="$ACCOUNT" format=account)
grep -qxF "$ACCOUNT" <<<"$have" || sacctmgr -i add user root Account="$ACCOUNT" DefaultAccount="$ACCOUNT" >/dev/null
log "slurmdbd up (account $ACCOUNT)"

# ---- slurmctld + slurmd ----
ctld_up() { alive /run/slurm/slurmctld.pid && [[ "$(timeout 5 scontrol ping 2>/dev/null)" == *"is UP"* ]]; }
alive /run/slurm/slurmctld.pid || /usr/sbin/slurmctld || {
  echo "slurmctld failed:" >&2; tail -5 /var/log/slurm/slurmctld.log >&2; exit 1; }
wait_for 30 ctld_up || { echo "slurmctld did not come up:" >&2; tail -5 /var/log/slurm/slurmctld.log >&2; exit 1; }
# -N localhost: the node's name does not depend on the machine's hostname
alive /run/slurm/slurmd.pid || /usr/sbin/slurmd -N localhost || {
  echo "slurmd failed:" >&2; tail -5 /var/log/slurm/slurmd.log >&2; exit 1; }
node_state() { timeout 5 sinfo -h -n localhost -o '%T' 2>/dev/null | head -n1 || true; }
node_ready() { case "$(node_state)" in idle|mixed|allocated|completing) return 0;; esac; return 1; }
if ! wait_for 30 node_ready; then
  scontrol update nodename=localhost state=resume 2>/dev/null || true  # left DOWN in saved state
  if ! wait_for 15 node_ready; then
    echo "node not ready (state '$(node_state)'):" >&2; timeout 5 sinfo -R >&2 || true
    tail -5 /var/log/slurm/slurmd.log >&2; exit 1
  fi
fi
log "cluster ready: $(timeout 5 sinfo -h -o '%P %a %T %N %G' | tr '\n' ';')"
