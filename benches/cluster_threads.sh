#!/usr/bin/env bash
# Where a 3-node cluster's time goes during one redis-benchmark line: per thread of every node,
# CPU (user/sys ticks) and run-queue wait (time runnable but not running, from
# /proc/<pid>/task/<tid>/schedstat), plus the machine's steal time. A diagnosis tool for the
# cluster's latency tail (benches/README.md, "Where the cluster's SET tail comes from"); the
# figures to quote come from cluster_vs_single.sh.
#
# Usage: benches/cluster_threads.sh [BIN]   (default: cargo build --release)
# Environment:
#   MODE=one|cluster  redis-benchmark connected to node 1 (default) or with --cluster
#   TEST=set|get      the line (default set), REQUESTS (default 100000)
#   DATA_BASE=DIR     where the nodes' data directories go (default: the system's temp
#                     directory; /dev/shm takes the disk out of the picture)
#   WARMUP=N          run N requests of the same line first, not measured
#   NICE_BG=N         renice the nodes' engine threads (ringkv-lsm-*, ringkv-wal-*) to N
#   NODE_ARGS="..."   extra ringkv arguments (e.g. "--row-cache-bytes 0")
# Nodes run --worker-threads 1 --fsync periodic, replication factor 3, nothing pinned, as in
# cluster_vs_single.sh. Needs: redis-benchmark, redis-cli, python3.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

MODE=${MODE:-one}
TEST=${TEST:-set}
REQUESTS=${REQUESTS:-100000}
BIN=${1:-}
if [[ -z $BIN ]]; then
    cargo build --release -p ringkv >&2
    BIN=${CARGO_TARGET_DIR:-target}/release/ringkv
fi
[[ -x $BIN ]] || { echo "error: no ringkv binary at $BIN" >&2; exit 1; }

WORK=$(mktemp -d ${DATA_BASE:+-p "$DATA_BASE"} -t ringkv-threads.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

PORTS=()
seed=
for i in 1 2 3; do
    port=$(free_port)
    bus=$(free_port)
    [[ -z $seed ]] && seed=127.0.0.1:$bus
    mkdir -p "$WORK/node-$i"
    # shellcheck disable=SC2086 # NODE_ARGS is a list of arguments
    "$BIN" --port "$port" --bus-port "$bus" --data-dir "$WORK/node-$i" --node-id "node-$i" \
        --seeds "$seed" --replication-factor 3 --worker-threads 1 --fsync periodic \
        --log-level warn ${NODE_ARGS:-} >"$WORK/node-$i.log" 2>&1 &
    PIDS+=($!)
    PORTS+=("$port")
done
deadline=$((SECONDS + 60))
for port in "${PORTS[@]}"; do
    until [[ $(redis-cli -p "$port" CLUSTER NODES 2>/dev/null | grep -v fail | grep connected |
        awk 'NF >= 9' | wc -l) == 3 ]]; do
        ((SECONDS < deadline)) || { echo "error: no 3-node ring in 60 s" >&2; tail -n 5 "$WORK"/*.log >&2; exit 1; }
        sleep 0.2
    done
done

if [[ -n ${NICE_BG:-} ]]; then
    for pid in "${PIDS[@]}"; do
        for task in /proc/"$pid"/task/*; do
            case $(cat "$task/comm") in
                ringkv-lsm-* | ringkv-wal-*) renice -n "$NICE_BG" -p "${task##*/}" >/dev/null ;;
            esac
        done
    done
fi

# snapshot: "node/thread-name user sys runq_wait_ns timeslices", summed over same-named threads.
snapshot() {
    local k pid task
    for k in "${!PIDS[@]}"; do
        pid=${PIDS[$k]}
        for task in /proc/"$pid"/task/*; do
            read -r -a stat <"$task/stat" || continue
            read -r _ wait slices <"$task/schedstat" || continue
            echo "node-$((k + 1))/$(cat "$task/comm") ${stat[13]} ${stat[14]} $wait $slices"
        done
    done | awk '{u[$1]+=$2; s[$1]+=$3; w[$1]+=$4; n[$1]+=$5}
        END {for (k in u) print k, u[k], s[k], w[k], n[k]}' | sort
}
steal() { awk '/^cpu / {print $9}' /proc/stat; }

bench() {
    local args=(-p "${PORTS[0]}" -c 50 -P 1 -d 1024 -r 100000 -t "$TEST" --csv)
    [[ $MODE == cluster ]] && args+=(--cluster)
    redis-benchmark "${args[@]}" -n "$1" | tail -n 1
}

if [[ -n ${WARMUP:-} ]]; then
    echo "warm-up: $(bench "$WARMUP")"
    sleep 2
fi
before=$(snapshot)
steal_before=$(steal)
echo "line (rps, avg, min, p50, p95, p99, max ms): $(bench "$REQUESTS")"
steal_after=$(steal)
after=$(snapshot)
echo "steal: $(((steal_after - steal_before) * 10)) ms of vCPU time"
join <(echo "$before") <(echo "$after") | awk '{
    du = $6 - $2; ds = $7 - $3; dw = ($8 - $4) / 1e6; dn = $9 - $5
    if (du + ds > 0)
        printf "  %-26s user %5d sys %5d ticks  run-queue wait %6.0f ms over %6d slices\n",
            $1, du, ds, dw, dn
}'
