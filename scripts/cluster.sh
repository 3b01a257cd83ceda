#!/usr/bin/env bash
# A 3-node ringkv cluster on this machine, for trying the cluster out by hand.
#
#   scripts/cluster.sh start    build target/release/ringkv (if stale), start the nodes, wait
#                               until each answers PING and they form one ring
#   scripts/cluster.sh stop     SIGTERM each node and wait for it to exit
#   scripts/cluster.sh status   which nodes run, and the ring as node 1 sees it (CLUSTER NODES)
#
# Node N (1..3) serves clients on port 700N and peers on bus port 1700N, is called node-N, keeps
# its data in ringkv-cluster/node-N/data and logs to ringkv-cluster/node-N/ringkv.log (under
# the repository root). Every node names all three bus addresses as seeds, with replication
# factor 3, so every key lives on all three nodes. Any other setting can be given through the
# environment, e.g. `RINGKV_FSYNC=always scripts/cluster.sh start`.
#
# Environment: CARGO_TARGET_DIR is honoured; RINGKV_BIN runs another binary;
# RINGKV_CLUSTER_DIR moves ringkv-cluster/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

readonly NODES=(1 2 3)
readonly CLIENT_PORT_BASE=7000
readonly BUS_PORT_BASE=17000
readonly WAIT_SECS=30
cluster_dir=${RINGKV_CLUSTER_DIR:-ringkv-cluster}
bin=${RINGKV_BIN:-${CARGO_TARGET_DIR:-target}/release/ringkv}

usage() {
    echo "usage: $0 start|stop|status" >&2
    exit 2
}

node_dir() { echo "$cluster_dir/node-$1"; }
client_port() { echo $((CLIENT_PORT_BASE + $1)); }
bus_port() { echo $((BUS_PORT_BASE + $1)); }

# node_pid N: prints node N's pid and succeeds if it is running (a ringkv process), else fails.
node_pid() {
    local pid_file pid
    pid_file="$(node_dir "$1")/ringkv.pid"
    [[ -f $pid_file ]] || return 1
    pid=$(<"$pid_file")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    # The pid may have been reused by another program since the node exited.
    [[ $(ps -p "$pid" -o comm= 2>/dev/null) == ringkv* ]] || return 1
    echo "$pid"
}

# answers_ping PORT: succeeds if something on 127.0.0.1:PORT answers an inline PING with a
# simple string or an error (-NOAUTH also means it is serving).
answers_ping() {
    (
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf 'PING\r\n' >&3
        reply=""
        read -r -t 2 reply <&3 || true
        [[ $reply == +* || $reply == -* ]]
    ) 2>/dev/null
}

ensure_binary() {
    if [[ -n ${RINGKV_BIN:-} ]]; then
        [[ -x $bin ]] || {
            echo "error: RINGKV_BIN=$bin is not an executable" >&2
            exit 1
        }
        return 0
    fi
    # Always asked: cargo does nothing when the binary is current, and a binary left from
    # before a pull would otherwise run silently.
    echo "building $bin (cargo build --release -p ringkv)"
    cargo build --release -p ringkv
}

start() {
    ensure_binary
    local n seeds=() dir port pid started=()
    for n in "${NODES[@]}"; do
        seeds+=("127.0.0.1:$(bus_port "$n")")
    done
    for n in "${NODES[@]}"; do
        dir=$(node_dir "$n")
        port=$(client_port "$n")
        if pid=$(node_pid "$n"); then
            echo "node-$n already running (pid $pid, port $port)"
            continue
        fi
        mkdir -p "$dir/data"
        {
            echo "==> $(date -u '+%Y-%m-%dT%H:%M:%SZ') starting node-$n"
        } >>"$dir/ringkv.log"
        nohup "$bin" \
            --port "$port" \
            --bus-port "$(bus_port "$n")" \
            --data-dir "$dir/data" \
            --node-id "node-$n" \
            --seeds "$(
                IFS=,
                echo "${seeds[*]}"
            )" \
            --replication-factor 3 \
            >>"$dir/ringkv.log" 2>&1 </dev/null &
        echo $! >"$dir/ringkv.pid"
        started+=("$n")
    done
    # Wait for every started node, so a port in use or a bad flag is reported here.
    for n in "${started[@]}"; do
        dir=$(node_dir "$n")
        port=$(client_port "$n")
        local deadline=$((SECONDS + WAIT_SECS))
        until answers_ping "$port"; do
            if ! node_pid "$n" >/dev/null; then
                echo "error: node-$n exited; the end of $dir/ringkv.log:" >&2
                tail -n 20 "$dir/ringkv.log" >&2
                exit 1
            fi
            if ((SECONDS >= deadline)); then
                echo "error: node-$n does not answer on port $port after ${WAIT_SECS}s; see $dir/ringkv.log" >&2
                exit 1
            fi
            sleep 0.2
        done
        echo "node-$n serving on 127.0.0.1:$port (bus $(bus_port "$n"), pid $(node_pid "$n"))"
    done
    wait_for_ring
    echo "try: redis-cli -c -p $(client_port "${NODES[0]}")"
}

# Waits until every node knows all of them and sees every slot served (CLUSTER INFO), so a
# client started next finds one ring. Needs redis-cli; without it, says so and returns.
wait_for_ring() {
    if ! command -v redis-cli >/dev/null 2>&1; then
        echo "(redis-cli not found: not waiting for the nodes to find each other)"
        return 0
    fi
    local n info deadline=$((SECONDS + WAIT_SECS))
    for n in "${NODES[@]}"; do
        until info=$(redis-cli -p "$(client_port "$n")" CLUSTER INFO 2>/dev/null) &&
            [[ $info == *"cluster_known_nodes:${#NODES[@]}"* && $info == *"cluster_state:ok"* ]]; do
            if ((SECONDS >= deadline)); then
                echo "error: node-$n does not see a ${#NODES[@]}-node ring after ${WAIT_SECS}s:" >&2
                echo "$info" >&2
                exit 1
            fi
            sleep 0.2
        done
    done
    echo "ring of ${#NODES[@]} nodes formed"
}

stop() {
    local n pid stopping=()
    for n in "${NODES[@]}"; do
        if pid=$(node_pid "$n"); then
            kill -TERM "$pid"
            stopping+=("$n:$pid")
        else
            rm -f "$(node_dir "$n")/ringkv.pid"
        fi
    done
    local entry failed=0
    for entry in "${stopping[@]}"; do
        n=${entry%%:*}
        pid=${entry#*:}
        local deadline=$((SECONDS + WAIT_SECS))
        while kill -0 "$pid" 2>/dev/null; do
            if ((SECONDS >= deadline)); then
                echo "error: node-$n (pid $pid) still running ${WAIT_SECS}s after SIGTERM" >&2
                failed=1
                continue 2
            fi
            sleep 0.2
        done
        rm -f "$(node_dir "$n")/ringkv.pid"
        echo "node-$n stopped"
    done
    if ((${#stopping[@]} == 0)); then
        echo "no node was running"
    fi
    return "$failed"
}

status() {
    local n pid first=""
    for n in "${NODES[@]}"; do
        if pid=$(node_pid "$n"); then
            echo "node-$n running  pid $pid  port $(client_port "$n")  bus $(bus_port "$n")"
            first=${first:-$n}
        else
            echo "node-$n stopped"
        fi
    done
    if [[ -z $first ]]; then
        return 0
    fi
    if command -v redis-cli >/dev/null 2>&1; then
        echo
        echo "CLUSTER NODES on node-$first:"
        redis-cli -p "$(client_port "$first")" CLUSTER NODES
    fi
}

[[ $# -eq 1 ]] || usage
case $1 in
start) start ;;
stop) stop ;;
status) status ;;
*) usage ;;
esac
