#!/usr/bin/env bash
# ringkv vs redis-server under redis-benchmark, side by side (issue 4, "How it is shown").
#
# Starts ringkv (release build, --worker-threads 1, --fsync periodic) and redis-server (AOF on,
# appendfsync everysec: the nearest durability to ringkv's default) in turn, each pinned to core
# 0, with redis-benchmark pinned to core 1, and runs on each:
#   SET and GET, 1 KiB values over 100,000 random keys, 50 clients, at -P 1 and -P 16;
#   MSET of 10 keys (redis-benchmark -t mset) and MGET of 10 keys (a custom command line).
# Servers alternate within every round (the order flips each round) over ROUNDS rounds; the
# summary gives the median of each figure: requests/s, p50/p99 latency (redis-benchmark --csv)
# and the server's CPU time per request (utime+stime from /proc/PID/stat, with its forked
# children's — redis's AOF rewrites —, over the line and the background work it leaves: after each line the script waits for the server to go idle, up to
# SETTLE_MAX_S, so a line's flushes and compactions count to it and not to the next line), and
# the ratios ringkv/redis.
#
# Environment:
#   QUICK=1        a smoke run: 1 round, 20,000 requests per line (default: 3 rounds, 200,000)
#   ROUNDS=N       rounds (default 3; QUICK: 1)
#   REQUESTS=N     requests per line at -P 1 (-P 16 lines send 4x as many)
#   RINGKV_BIN     the ringkv binary (default: build it with cargo build --release)
#   KEEP=1         keep the work directory (logs, raw CSV)
#   SETTLE_MAX_S   longest wait for the server to go idle after a line (default 120)
# Needs: redis-server, redis-benchmark, redis-cli (Debian: redis-server, redis-tools), taskset
# (util-linux), pgrep (procps), python3 (for the summary table), 2 CPU cores.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
    ROUNDS=${ROUNDS:-1}
    REQUESTS=${REQUESTS:-20000}
else
    ROUNDS=${ROUNDS:-3}
    REQUESTS=${REQUESTS:-200000}
fi
CLIENTS=50
KEYSPACE=100000
VALUE_BYTES=1024
SERVER_CPU=0
BENCH_CPU=1

for tool in redis-server redis-benchmark redis-cli taskset pgrep python3; do
    command -v "$tool" >/dev/null || { echo "error: $tool is not installed" >&2; exit 1; }
done
if (($(nproc) < 2)); then
    echo "error: needs 2 CPU cores (server on core $SERVER_CPU, client on core $BENCH_CPU)" >&2
    exit 1
fi

if [[ -z ${RINGKV_BIN:-} ]]; then
    cargo build --release -p ringkv >&2
    RINGKV_BIN=${CARGO_TARGET_DIR:-target}/release/ringkv
fi
[[ -x $RINGKV_BIN ]] || { echo "error: no ringkv binary at $RINGKV_BIN" >&2; exit 1; }

WORK=$(mktemp -d -t ringkv-vs-redis.XXXXXX)
RESULTS=$WORK/results.tsv
SERVER_PID=
cleanup() {
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
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

# own_ticks PID: utime + stime + cutime + cstime of one process, in clock ticks (fields 14-17
# of /proc/PID/stat, counted after the parenthesised command name, which may hold spaces);
# nothing if it is gone.
own_ticks() {
    local stat
    stat=$(<"/proc/$1/stat") 2>/dev/null || return 0
    stat=${stat##*) }
    # After "pid (comm) ", field 3 (state) is the first: utime is the 12th ... cstime the 15th.
    awk '{ print $12 + $13 + $14 + $15 }' <<<"$stat"
}

# cpu_ticks PID: the CPU the server has used, in clock ticks: its own, its reaped children's
# (cutime/cstime) and its live children's. *Why:* redis-server rewrites its AOF in a forked
# child (auto-aof-rewrite-percentage 100, so several times over the SET lines): that is redis's
# compaction, and ringkv's flushes and compactions are charged to ringkv.
cpu_ticks() {
    local total child
    total=$(own_ticks "$1")
    for child in $(pgrep -P "$1" 2>/dev/null); do
        total=$((total + $(own_ticks "$child")))
    done
    echo "$((${total:-0}))"
}

wait_ready() {
    local port=$1 deadline=$((SECONDS + 30))
    until redis-cli -p "$port" PING 2>/dev/null | grep -q PONG; do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "error: the server exited; its log:" >&2
            cat "$WORK"/*.log >&2
            exit 1
        fi
        if ((SECONDS > deadline)); then
            echo "error: the server did not answer PING in 30 s" >&2
            exit 1
        fi
        sleep 0.05
    done
}

start_server() {
    local name=$1 port=$2 round=$3
    local dir=$WORK/$name-$round
    mkdir -p "$dir"
    case $name in
        ringkv)
            taskset -c "$SERVER_CPU" "$RINGKV_BIN" --port "$port" --bus-port "$(free_port)" \
                --data-dir "$dir/data" \
                --worker-threads 1 --fsync periodic --log-level warn \
                >"$WORK/$name-$round.log" 2>&1 &
            ;;
        redis)
            taskset -c "$SERVER_CPU" redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" \
                --save "" --appendonly yes --appendfsync everysec --daemonize no \
                --logfile "$WORK/$name-$round.log" &
            ;;
    esac
    SERVER_PID=$!
    wait_ready "$port"
}

stop_server() {
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" || true
    SERVER_PID=
}

# settle PID: waits (up to SETTLE_MAX_S, default 120 s) until the server is idle, i.e. it used
# at most 1 tick in each of two consecutive half-seconds, and prints its CPU ticks then.
# *Why:* ringkv flushes and compacts after a write burst (redis has no such work); measured
# straight after its line, that work landed in the next line's CPU and latency (a GET line
# paid for the SET line before it). Settling charges each line with the background work it
# caused and starts the next line on an idle server, for both servers alike.
settle() {
    local pid=$1 deadline=$((SECONDS + ${SETTLE_MAX_S:-120})) prev now quiet=0
    prev=$(cpu_ticks "$pid")
    while ((quiet < 2 && SECONDS < deadline)); do
        sleep 0.5
        now=$(cpu_ticks "$pid")
        if ((now - prev <= 1)); then quiet=$((quiet + 1)); else quiet=0; fi
        prev=$now
    done
    echo "$prev"
}

# run_line SERVER ROUND PORT LINE REQUESTS redis-benchmark-args...
run_line() {
    local server=$1 round=$2 port=$3 line=$4 requests=$5
    shift 5
    local before during after csv
    before=$(cpu_ticks "$SERVER_PID")
    csv=$(taskset -c "$BENCH_CPU" redis-benchmark -p "$port" -c "$CLIENTS" -n "$requests" \
        -r "$KEYSPACE" --csv "$@" 2>/dev/null | tail -n 1)
    during=$(($(cpu_ticks "$SERVER_PID") - before))
    # CPU of the line: while it ran, plus the background work it left (see settle).
    after=$(settle "$SERVER_PID")
    # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    IFS=, read -r _ rps _ _ p50 _ p99 _ <<<"${csv//\"/}"
    [[ -n $rps && -n $p99 ]] || { echo "error: no CSV from redis-benchmark for $line: $csv" >&2; exit 1; }
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$round" "$line" "$rps" "$p50" "$p99" \
        "$((after - before))" "$requests" >>"$RESULTS"
    printf '  %-7s %-12s %12s req/s  p50 %6s ms  p99 %6s ms  cpu %5s ticks (%s after the line)\n' \
        "$server" "$line" "$rps" "$p50" "$p99" "$((after - before))" "$((after - before - during))" >&2
}

run_server() {
    local server=$1 round=$2 port
    port=$(free_port)
    start_server "$server" "$port" "$round"
    local mget=(MGET)
    for _ in $(seq 10); do mget+=("key:__rand_int__"); done
    run_line "$server" "$round" "$port" "SET P1" "$REQUESTS" -t set -d "$VALUE_BYTES" -P 1
    run_line "$server" "$round" "$port" "GET P1" "$REQUESTS" -t get -d "$VALUE_BYTES" -P 1
    run_line "$server" "$round" "$port" "SET P16" "$((REQUESTS * 4))" -t set -d "$VALUE_BYTES" -P 16
    run_line "$server" "$round" "$port" "GET P16" "$((REQUESTS * 4))" -t get -d "$VALUE_BYTES" -P 16
    run_line "$server" "$round" "$port" "MSET10 P1" "$REQUESTS" -t mset -d "$VALUE_BYTES" -P 1
    run_line "$server" "$round" "$port" "MGET10 P1" "$REQUESTS" -P 1 "${mget[@]}"
    stop_server
}

printf 'server\tround\tline\trps\tp50_ms\tp99_ms\tcpu_ticks\trequests\n' >"$RESULTS"
echo "ringkv: $RINGKV_BIN; $(redis-server --version | cut -d' ' -f1-3); rounds $ROUNDS," \
    "$REQUESTS requests per -P 1 line, $CLIENTS clients, ${VALUE_BYTES} B values, $KEYSPACE keys" >&2
for round in $(seq "$ROUNDS"); do
    if ((round % 2 == 1)); then order=(ringkv redis); else order=(redis ringkv); fi
    echo "round $round: ${order[*]}" >&2
    for server in "${order[@]}"; do
        run_server "$server" "$round"
    done
done

python3 - "$RESULTS" "$(getconf CLK_TCK)" <<'PY'
import csv, statistics, sys
path, clk_tck = sys.argv[1], int(sys.argv[2])
rows = list(csv.DictReader(open(path), delimiter="\t"))
lines = list(dict.fromkeys(r["line"] for r in rows))
def median(server, line, key):
    values = []
    for r in rows:
        if r["server"] == server and r["line"] == line:
            if key == "cpu_us":
                values.append(float(r["cpu_ticks"]) * 1e6 / clk_tck / float(r["requests"]))
            else:
                values.append(float(r[key]))
    return statistics.median(values)
print("medians over %d round(s); cpu = server utime+stime (children included) per request, the line's background work included"
      % len({r["round"] for r in rows}))
header = ("line", "ringkv req/s", "redis req/s", "ratio", "ringkv p50/p99 ms",
          "redis p50/p99 ms", "ringkv cpu us", "redis cpu us", "cpu ratio")
print("| " + " | ".join(header) + " |")
print("|" + "---|" * len(header))
for line in lines:
    k_rps, r_rps = median("ringkv", line, "rps"), median("redis", line, "rps")
    k_cpu, r_cpu = median("ringkv", line, "cpu_us"), median("redis", line, "cpu_us")
    cpu_ratio = "%.2f" % (k_cpu / r_cpu) if r_cpu > 0 else "n/a"
    print("| %s | %.0f | %.0f | %.2f | %.3f / %.3f | %.3f / %.3f | %.2f | %.2f | %s |" % (
        line, k_rps, r_rps, k_rps / r_rps,
        median("ringkv", line, "p50_ms"), median("ringkv", line, "p99_ms"),
        median("redis", line, "p50_ms"), median("redis", line, "p99_ms"),
        k_cpu, r_cpu, cpu_ratio))
PY
