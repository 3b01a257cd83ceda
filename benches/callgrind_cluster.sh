#!/usr/bin/env bash
# Instructions per SET (callgrind) on one node of a local 3-node cluster (RF 3, QUORUM; 50
# clients, 1 KiB values over 100,000 keys, as cluster_vs_single.sh), the others running natively.
# Usage: benches/callgrind_cluster.sh RINGKV_BINARY [coord|replica] [REQUESTS] [PIPELINE]
#   coord    node 1 runs under callgrind and redis-benchmark connects to it (default);
#   replica  node 2 runs under callgrind, redis-benchmark connects to node 1; the dump waits
#            DRAIN seconds (default 30) for the slowed replica to catch up. Approximate: the
#            window holds a varying share of the line's writes (count them, e.g. the calls of
#            `Memtable::insert`, to divide by) and that long of idle background work (gossip).
# REQUESTS defaults to 20,000, PIPELINE to 1. 2,000 SETs warm the connections first (not
# counted). Prints: total Ir, requests, Ir/request; callgrind.out is kept in $OUT (default
# /tmp/cgc-$$).
set -euo pipefail
BIN=$1; ROLE=${2:-coord}; N=${3:-20000}; P=${4:-1}
OUT=${OUT:-/tmp/cgc-$$}; rm -rf "$OUT"; mkdir -p "$OUT"
fp() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PIDS=(); PORTS=(); seed=
VGN=1; [[ $ROLE == replica ]] && VGN=2
for i in 1 2 3; do
  p=$(fp); b=$(fp); [[ -z $seed ]] && seed=127.0.0.1:$b; mkdir -p $OUT/n$i
  pre=(); [[ $i == $VGN ]] && pre=(valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=$OUT/callgrind.out)
  "${pre[@]}" "$BIN" --port $p --bus-port $b --data-dir $OUT/n$i --node-id node-$i --seeds $seed --replication-factor 3 --worker-threads 1 --fsync periodic --log-level warn >$OUT/log$i 2>&1 &
  PIDS+=($!); PORTS+=($p)
done
trap 'kill -TERM ${PIDS[*]} 2>/dev/null || true' EXIT
for p in "${PORTS[@]}"; do for _ in $(seq 1 300); do redis-cli -p $p ping 2>/dev/null | grep -q PONG && break; sleep 0.2; done; done
for _ in $(seq 1 300); do [[ $(redis-cli -p ${PORTS[0]} CLUSTER NODES | grep -v fail | grep -c connected) == 3 ]] && break; sleep 0.2; done
VG=${PIDS[$((VGN-1))]}
redis-benchmark -p ${PORTS[0]} -c 50 -d 1024 -r 100000 -n 2000 -P $P -t set -q >/dev/null 2>&1  # warm connections
callgrind_control -i on "$VG" >/dev/null
redis-benchmark -p ${PORTS[0]} -c 50 -d 1024 -r 100000 -n $N -P $P -t set -q 2>/dev/null | tail -1
[[ $ROLE == replica ]] && sleep "${DRAIN:-30}"
callgrind_control -d "$VG" >/dev/null
callgrind_control -i off "$VG" >/dev/null
kill -TERM ${PIDS[*]}; wait 2>/dev/null || true; trap - EXIT
f="$OUT/callgrind.out.1"
ir=$(awk '/^totals:/{print $2}' "$f")
echo "role=$ROLE P=$P requests=$N Ir=$ir Ir/req=$((ir / N)) file=$f"
