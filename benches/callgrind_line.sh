#!/usr/bin/env bash
# Instructions per request (callgrind) of one redis-benchmark line against a ringkv binary under callgrind.
# Usage: benches/callgrind_line.sh RINGKV_BINARY TEST [PIPELINE] [REQUESTS]
#   TEST: set | get | mset | mget   (1 KiB values, 100,000 random keys, 50 clients)
# Fills 100k keys (SET -P16, not measured) when TEST is get/mget, then measures TEST.
# Prints: total Ir, requests, Ir/request; callgrind.out is kept in $OUT (default /tmp/cg-$$).
# Env: PORT (default 17000+$RANDOM%2000), VGEXTRA (extra valgrind flags).
set -euo pipefail
BIN=$1; TEST=$2; P=${3:-16}; N=${4:-20000}
PORT=${PORT:-$((17000 + RANDOM % 2000))}
OUT=${OUT:-/tmp/cg-$$}; mkdir -p "$OUT"; rm -rf "$OUT/data"
valgrind --tool=callgrind --instr-atstart=no ${VGEXTRA:-} --callgrind-out-file="$OUT/callgrind.out" \
  "$BIN" --port "$PORT" --bus-port $((PORT + 10000)) --data-dir "$OUT/data" --worker-threads 1 \
  --fsync periodic --log-level warn >"$OUT/node.log" 2>&1 &
VG=$!
trap 'kill -INT $VG 2>/dev/null || true' EXIT
for _ in $(seq 1 200); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.2; done
bench() { redis-benchmark -p "$PORT" -c 50 -d 1024 -r 100000 -q "$@" >/dev/null 2>&1; }
case $TEST in
  get|mget) bench -n 100000 -P 16 -t set ;;
esac
callgrind_control -i on "$VG" >/dev/null
if [ "$TEST" = mget ]; then
  # redis-benchmark has no mget test: 10 keys, as its mset test writes.
  bench -n "$N" -P "$P" MGET $(for _ in $(seq 10); do printf 'key:__rand_int__ '; done)
else
  bench -n "$N" -P "$P" -t "$TEST"
fi
callgrind_control -d "$VG" >/dev/null
callgrind_control -i off "$VG" >/dev/null
kill -INT $VG; wait $VG 2>/dev/null || true; trap - EXIT
f="$OUT/callgrind.out.1"
ir=$(awk '/^totals:/{print $2}' "$f")
echo "test=$TEST P=$P requests=$N Ir=$ir Ir/req=$((ir / N)) file=$f"
