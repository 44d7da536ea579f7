#!/bin/sh
# Incident analysis over 1 M grants, SQLite against PostgreSQL (BENCHMARKS.md, "PostgreSQL
# backend: incident analysis over 1 M grants"). Usage:
#   bench/accountability_backends.sh build   ACCOUNTS AUDIENCES   # one data build on each
#   bench/accountability_backends.sh analyze ACCOUNTS AUDIENCES N # N analysis runs each, S P S P …
# SQLite data goes to $DATA/acc-ACCOUNTSxAUDIENCES, PostgreSQL data to the database
# tailor_bench_acc_ACCOUNTSxAUDIENCES on $PG (created if missing). Runs go through
# bench/prio.sh (autogroup and nice -20); load and the busiest processes are printed first.
set -eu
mode=$1 accounts=$2 audiences=$3 n=${4:-3}
bin=${CARGO_TARGET_DIR:-target}/release/examples/accountability
DATA=${DATA:-/work/meas-data}
PG=${PG:-postgres://postgres@127.0.0.1:5432}
name=${accounts}x${audiences}
db=tailor_bench_acc_$name
here=$(dirname "$0")
psql "$PG/postgres" -Atc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 ||
    psql "$PG/postgres" -qc "CREATE DATABASE $db"
mkdir -p "$DATA"
idle() { # percent of CPU time idle over the next second
    set -- $(head -1 /proc/stat)
    busy1=$(($2 + $3 + $4 + $7 + $8 + $9)) idle1=$(($5 + $6))
    sleep 1
    set -- $(head -1 /proc/stat)
    busy2=$(($2 + $3 + $4 + $7 + $8 + $9)) idle2=$(($5 + $6))
    echo $((100 * (idle2 - idle1) / (busy2 - busy1 + idle2 - idle1 + 1)))
}
run() { # BACKEND
    # Waits (up to WAIT seconds, default 120) for the machine to be at least 85% idle.
    waited=0
    while [ "$(idle)" -lt 85 ] && [ $waited -lt "${WAIT:-120}" ]; do waited=$((waited + 1)); done
    echo "=== $1 $name $(date -u +%H:%M:%S) $(uptime | sed 's/.*load/load/') idle $(idle)% after waiting ${waited} s"
    top -bn2 -d0.5 -w 110 | awk '/^top -/ { frame++ } frame == 2' | sed -n '8,10p'
    if [ "$1" = sqlite ]; then
        TAILOR_BENCH_DIR="$DATA/acc-$name" setsid "$here/prio.sh" "$bin" "$accounts" "$audiences"
    else
        TAILOR_DATABASE_URL="$PG/$db" setsid "$here/prio.sh" "$bin" "$accounts" "$audiences"
    fi
}
case $mode in
build)
    run sqlite
    echo "sqlite on disk: $(du -sb "$DATA/acc-$name" | cut -f1) bytes"
    run postgres
    echo "postgres on disk: $(psql "$PG/postgres" -Atc "SELECT pg_database_size('$db')") bytes"
    ;;
analyze)
    i=0
    while [ $i -lt "$n" ]; do
        run sqlite
        run postgres
        i=$((i + 1))
    done
    ;;
esac
