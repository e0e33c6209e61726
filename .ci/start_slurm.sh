#!/usr/bin/env bash
# Single-node SLURM (Debian 12: slurm-wlm 22.05.8) on localhost, no systemd needed, for the
# cluster tests (pytest -m slurm, tests/test_slurm.py) and for trying profiles/slurm on one machine
# (partition `debug`, account `ci`; profiles/README.md says how to point profiles/slurm at it). Run as root; ~50 s the first
# time (apt), a few seconds when already installed/running. Copied from the project's shared tooling.
# Idempotent: installs missing packages, (re)writes config, starts only what is not running,
# restarts the SLURM daemons if the generated config changed.
#   sudo bash .ci/start_slurm.sh [start|stop]
# Env: WITH_DBD=1   (default) slurmdbd + local MariaDB so `sacct` works (plugin default status command)
#      WITH_DBD=0   no accounting: lighter, but snakemake needs `slurm-status-command: squeue`
#      FAKE_GPU=1   (default here) advertise one fake GPU (File=/dev/null) so gpu=1 jobs are scheduled;
#                   FAKE_GPU=0 for a CPU-only node (the workflow's GPU jobs are then refused)
#      SLURM_ACCOUNT=ci  account created in slurmdbd for root (and $SUDO_USER)
#      NODE_MEM_MB=N  advertise N MB of node memory (default: the real amount), so that jobs sized for
#                   the paper by profiles/default (up to 64 GB) are scheduled on a small test machine
set -euo pipefail
WITH_DBD=${WITH_DBD:-1}; FAKE_GPU=${FAKE_GPU:-1}; ACCOUNT=${SLURM_ACCOUNT:-ci}; NODE_MEM_MB=${NODE_MEM_MB:-}
PIDS="/run/slurmd.pid /run/slurmctld.pid /run/slurmdbd.pid /run/mysqld/mysqld.pid /run/munge/munged.pid"
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
waitfor() { for _ in $(seq 1 "$1"); do if eval "$2" >/dev/null 2>&1; then return 0; fi; sleep 0.5; done; echo "timeout: $2" >&2; return 1; }
stopd() { for p in "$@"; do if alive "$p"; then pid=$(cat "$p"); kill "$pid" || true; waitfor 40 "! kill -0 $pid"; fi; rm -f "$p"; done; }
if [ "${1:-start}" = stop ]; then stopd $PIDS; exit 0; fi

# 1. packages (apt only if something is missing)
PKGS="slurm-wlm munge"; [ "$WITH_DBD" = 1 ] && PKGS="$PKGS slurmdbd mariadb-server"
MISSING=$(for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
if [ -n "$MISSING" ]; then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $MISSING
fi

# 2. munge
[ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
install -d -o munge -g munge -m 755 /run/munge
alive /run/munge/munged.pid || runuser -u munge -- /usr/sbin/munged
waitfor 20 "munge -n | unmunge"

# 3. slurm.conf (hardware taken from `slurmd -C`; NodeName=localhost, slurmd started with -N localhost)
HW=$(slurmd -C | sed -n '1s/^NodeName=[^ ]* //p')
OVERRIDES=""
if [ -n "$NODE_MEM_MB" ]; then HW=$(echo "$HW" | sed "s/RealMemory=[0-9]*/RealMemory=$NODE_MEM_MB/"); OVERRIDES="SlurmdParameters=config_overrides"; fi
if [ "$WITH_DBD" = 1 ]; then
  ACCT=$'AccountingStorageType=accounting_storage/slurmdbd\nAccountingStorageHost=localhost\nAccountingStorageTRES=gres/gpu'
else
  ACCT=$'AccountingStorageType=accounting_storage/none\nJobCompType=jobcomp/filetxt\nJobCompLoc=/var/log/slurm/jobcomp.log'
fi
GRES=""; if [ "$FAKE_GPU" = 1 ]; then GRES="Gres=gpu:1"; echo "NodeName=localhost Name=gpu File=/dev/null" > /etc/slurm/gres.conf; else rm -f /etc/slurm/gres.conf; fi
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat > /etc/slurm/slurm.conf.new <<EOF
ClusterName=localcluster
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
$OVERRIDES
ReturnToService=2
MinJobAge=300
JobAcctGatherType=jobacct_gather/linux
$ACCT
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 $HW $GRES State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
if ! cmp -s /etc/slurm/slurm.conf.new /etc/slurm/slurm.conf; then
  stopd /run/slurmd.pid /run/slurmctld.pid   # config changed: restart SLURM daemons
  mv /etc/slurm/slurm.conf.new /etc/slurm/slurm.conf
else rm -f /etc/slurm/slurm.conf.new; fi

# 4. accounting: MariaDB (socket only, no TCP) + slurmdbd
if [ "$WITH_DBD" = 1 ]; then
  install -d -o mysql -g mysql /run/mysqld
  [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql >/dev/null
  alive /run/mysqld/mysqld.pid || (setsid /usr/sbin/mariadbd --user=mysql --skip-networking \
      --pid-file=/run/mysqld/mysqld.pid --log-error=/var/log/mysql/error.log </dev/null >/dev/null 2>&1 &)
  waitfor 60 "mariadb-admin ping"
  mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db; CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
  printf '%s\n' AuthType=auth/munge DbdHost=localhost SlurmUser=root PidFile=/run/slurmdbd.pid \
    LogFile=/var/log/slurm/slurmdbd.log StorageType=accounting_storage/mysql StorageHost=localhost \
    StorageUser=slurm StoragePass=slurm StorageLoc=slurm_acct_db > /etc/slurm/slurmdbd.conf
  chmod 600 /etc/slurm/slurmdbd.conf
  alive /run/slurmdbd.pid || slurmdbd
  waitfor 60 "sacctmgr -n list cluster"
  sacctmgr -n list cluster format=cluster%40 | grep -qw localcluster || sacctmgr -i add cluster localcluster >/dev/null
  sacctmgr -n list account format=account%40 | grep -qw "$ACCOUNT" || sacctmgr -i add account "$ACCOUNT" Description=ci Organization=ci >/dev/null
  for u in root ${SUDO_USER:-}; do
    sacctmgr -n list assoc user="$u" account="$ACCOUNT" format=user%40 | grep -q . || sacctmgr -i add user "$u" Account="$ACCOUNT" >/dev/null
  done
fi

# 5. slurmctld + slurmd
alive /run/slurmctld.pid || slurmctld
waitfor 40 "scontrol ping | grep -q UP"
alive /run/slurmd.pid || slurmd -N localhost
for _ in $(seq 1 80); do   # wait for the node; un-drain it if an old config left it DRAIN/INVAL
  case "$(sinfo -h -n localhost -o %T)" in
    idle|mixed|allocated|completing) break ;;
    *'*'|unknown) ;;                       # slurmd not registered yet
    *drain*|down|inval) scontrol update nodename=localhost state=resume || true ;;
  esac; sleep 0.5
done
timeout 60 sbatch --wait -Q -o /dev/null --wrap true   # smoke test: a job really runs
sinfo
