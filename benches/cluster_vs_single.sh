#!/usr/bin/env bash
# A local 3-node ringkv cluster vs one ringkv node under redis-benchmark (issue 5, "How it is
# shown").
#
# Runs, in turn over ROUNDS rounds (the order flips each round):
#   single   one node (--replication-factor 1), redis-benchmark connected to it;
#   cluster  three nodes on loopback (--replication-factor 3, connections at QUORUM, the
#            default), redis-benchmark connected to the first node;
#   cluster-aware  the same cluster with redis-benchmark --cluster (it reads CLUSTER NODES and
#            sends each key to a replica of its slot, spreading the load over the nodes).
# Lines: SET and GET, 1 KiB values over 100,000 random keys, 50 clients, -P 1. Nodes run
# --worker-threads 1 and --fsync periodic; nothing is pinned: the three nodes and the client
# share the machine's cores, as they would on a laptop. Prints requests/s and p50/p99 (medians),
# each setup's ratio to the single node, and the machine's idle and stolen CPU over each line
# (from /proc/stat): a line near 0% idle is measuring the queue for the CPUs, not the code.
#
# Environment:
#   QUICK=1        a smoke run: 1 round, 20,000 requests per line (default: 3 rounds, 100,000)
#   ROUNDS=N, REQUESTS=N, RINGKV_BIN (default: cargo build --release), KEEP=1 (keep logs)
# Needs: redis-benchmark, redis-cli (Debian: redis-tools), python3.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
    ROUNDS=${ROUNDS:-1}
    REQUESTS=${REQUESTS:-20000}
else
    ROUNDS=${ROUNDS:-3}
    REQUESTS=${REQUESTS:-100000}
fi
CLIENTS=50
KEYSPACE=100000
VALUE_BYTES=1024

for tool in redis-benchmark redis-cli python3; do
    command -v "$tool" >/dev/null || { echo "error: $tool is not installed" >&2; exit 1; }
done
if [[ -z ${RINGKV_BIN:-} ]]; then
    cargo build --release -p ringkv >&2
    RINGKV_BIN=${CARGO_TARGET_DIR:-target}/release/ringkv
fi
[[ -x $RINGKV_BIN ]] || { echo "error: no ringkv binary at $RINGKV_BIN" >&2; exit 1; }

WORK=$(mktemp -d -t ringkv-cluster-bench.XXXXXX)
RESULTS=$WORK/results.tsv
PIDS=()
stop_all() {
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
}
cleanup() {
    stop_all
    if [[ ${KEEP:-0} == 1 ]]; then
        echo "work directory kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_ready() {
    local port=$1 deadline=$((SECONDS + 30))
    until redis-cli -p "$port" PING 2>/dev/null | grep -q PONG; do
        if ((SECONDS > deadline)); then
            echo "error: node on port $port did not answer PING in 30 s; logs:" >&2
            tail -n 20 "$WORK"/*.log >&2
            exit 1
        fi
        sleep 0.1
    done
}

# wait_converged NODES PORT...: until every node lists NODES nodes, none failed and each owning
# slots (redis-benchmark --cluster gives up on a master it sees without slots, which a node
# shows while its gossip has not yet brought a peer's tokens).
wait_converged() {
    local nodes=$1 port deadline=$((SECONDS + 60))
    shift
    for port in "$@"; do
        until [[ $(redis-cli -p "$port" CLUSTER NODES | grep -v fail | grep connected |
            awk 'NF >= 9' | wc -l) == "$nodes" ]]; do
            if ((SECONDS > deadline)); then
                echo "error: the cluster did not converge to $nodes nodes with slots in 60 s" >&2
                redis-cli -p "$port" CLUSTER NODES >&2 || true
                exit 1
            fi
            sleep 0.2
        done
    done
}

# start_nodes NAME ROUND COUNT RF: starts COUNT nodes; sets PORTS.
start_nodes() {
    local name=$1 round=$2 count=$3 rf=$4 i seed_bus=
    PORTS=()
    for ((i = 1; i <= count; i++)); do
        local port bus dir=$WORK/$name-$round/node-$i
        port=$(free_port)
        bus=$(free_port)
        [[ -z $seed_bus ]] && seed_bus=127.0.0.1:$bus
        mkdir -p "$dir"
        "$RINGKV_BIN" --port "$port" --bus-port "$bus" --data-dir "$dir" --node-id "node-$i" \
            --seeds "$seed_bus" --replication-factor "$rf" --worker-threads 1 \
            --fsync periodic --log-level warn >"$WORK/$name-$round-$i.log" 2>&1 &
        PIDS+=($!)
        PORTS+=("$port")
    done
    for port in "${PORTS[@]}"; do wait_ready "$port"; done
    wait_converged "$count" "${PORTS[@]}"
}

# run_line SETUP ROUND LINE redis-benchmark-args...
# The machine's CPU time so far (/proc/stat's "cpu" line): "idle steal total", in ticks. Idle
# counts iowait too. A line that leaves the CPUs no idle time is measuring queueing for them.
cpu_ticks() {
    local _cpu user nice system idle iowait irq softirq steal _rest
    read -r _cpu user nice system idle iowait irq softirq steal _rest </proc/stat
    echo "$((idle + iowait)) $steal $((user + nice + system + idle + iowait + irq + softirq + steal))"
}

run_line() {
    local setup=$1 round=$2 line=$3
    shift 3
    local csv rps p50 p99 before after idle steal
    before=$(cpu_ticks)
    csv=$(redis-benchmark -c "$CLIENTS" -n "$REQUESTS" -r "$KEYSPACE" -d "$VALUE_BYTES" --csv "$@" \
        2>/dev/null | tail -n 1)
    after=$(cpu_ticks)
    IFS=, read -r _ rps _ _ p50 _ p99 _ <<<"${csv//\"/}"
    [[ -n $rps && -n $p99 ]] || { echo "error: no CSV from redis-benchmark ($setup $line): $csv" >&2; exit 1; }
    read -r idle steal <<<"$(python3 -c 'import sys
b = [int(x) for x in sys.argv[1].split()]; a = [int(x) for x in sys.argv[2].split()]
total = max(a[2] - b[2], 1)
print("%.0f %.0f" % (100 * (a[0] - b[0]) / total, 100 * (a[1] - b[1]) / total))' "$before" "$after")"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$setup" "$round" "$line" "$rps" "$p50" "$p99" \
        "$idle" "$steal" >>"$RESULTS"
    printf '  %-14s %-6s %12s req/s  p50 %6s ms  p99 %6s ms  idle %3s%%  steal %2s%%\n' \
        "$setup" "$line" "$rps" "$p50" "$p99" "$idle" "$steal" >&2
}

run_setup() {
    local setup=$1 round=$2
    case $setup in
        single)
            start_nodes single "$round" 1 1
            run_line single "$round" SET -p "${PORTS[0]}" -t set
            run_line single "$round" GET -p "${PORTS[0]}" -t get
            ;;
        cluster)
            start_nodes cluster "$round" 3 3
            run_line cluster "$round" SET -p "${PORTS[0]}" -t set
            run_line cluster "$round" GET -p "${PORTS[0]}" -t get
            run_line cluster-aware "$round" SET -p "${PORTS[0]}" --cluster -t set
            run_line cluster-aware "$round" GET -p "${PORTS[0]}" --cluster -t get
            ;;
    esac
    stop_all
}

printf 'setup\tround\tline\trps\tp50_ms\tp99_ms\tidle_pct\tsteal_pct\n' >"$RESULTS"
echo "ringkv: $RINGKV_BIN; rounds $ROUNDS, $REQUESTS requests per line, $CLIENTS clients," \
    "${VALUE_BYTES} B values, $KEYSPACE keys, -P 1" >&2
for round in $(seq "$ROUNDS"); do
    if ((round % 2 == 1)); then order=(single cluster); else order=(cluster single); fi
    echo "round $round: ${order[*]}" >&2
    for setup in "${order[@]}"; do
        run_setup "$setup" "$round"
    done
done

python3 - "$RESULTS" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
def median(setup, line, key):
    return statistics.median(float(r[key]) for r in rows if r["setup"] == setup and r["line"] == line)
print("medians over %d round(s)" % len({r["round"] for r in rows}))
print("| setup | line | req/s | vs single | p50 ms | p99 ms | CPU idle % | steal % |")
print("|---|---|---|---|---|---|---|---|")
for setup in dict.fromkeys(r["setup"] for r in rows):
    for line in dict.fromkeys(r["line"] for r in rows if r["setup"] == setup):
        rps = median(setup, line, "rps")
        print("| %s | %s | %.0f | %.2f | %.3f | %.3f | %.0f | %.0f |" % (
            setup, line, rps, rps / median("single", line, "rps"),
            median(setup, line, "p50_ms"), median(setup, line, "p99_ms"),
            median(setup, line, "idle_pct"), median(setup, line, "steal_pct")))
PY
