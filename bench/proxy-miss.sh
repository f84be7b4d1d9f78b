#!/usr/bin/env bash
# Forward proxy miss path: an uncacheable response (Cache-Control: no-store) from an nginx origin,
# fetched straight, through gatehouse and through Squid (1 worker, and 2 SMP workers: its best on
# 2 cores), alternating in rounds with wrk sending
# absolute-form requests. Prints rps, p50/p99 and the ratios.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/bench/lib.sh"
need_debian wrk:wrk squid:squid nginx:nginx-light

ROUNDS=${ROUNDS:-3}
SECS=${SECS:-8}
CONNS=${CONNS:-50}
ORIGIN=$(free_port); GH=$(free_port); SQ=$(free_port); SQ2=$(free_port)
start_nginx_origin "$ORIGIN"
start_gatehouse "$GH"
start_squid "$SQ"
start_squid "$SQ2" 64 2
URL="http://127.0.0.1:$ORIGIN/nocache"

# Warm-up: pools, JIT.
run_wrk warm "$GH" "$URL" 2 "$CONNS" >/dev/null
run_wrk warm "$SQ" "$URL" 2 "$CONNS" >/dev/null
run_wrk warm "$SQ2" "$URL" 2 "$CONNS" >/dev/null

: >"$BENCH_DIR/results"
for r in $(seq 1 "$ROUNDS"); do
  run_wrk direct "$ORIGIN" "$URL" "$SECS" "$CONNS" plain | tee -a "$BENCH_DIR/results"
  run_wrk gatehouse "$GH" "$URL" "$SECS" "$CONNS" | tee -a "$BENCH_DIR/results"
  run_wrk squid "$SQ" "$URL" "$SECS" "$CONNS" | tee -a "$BENCH_DIR/results"
  run_wrk squid-2w "$SQ2" "$URL" "$SECS" "$CONNS" | tee -a "$BENCH_DIR/results"
done

med() { awk -v n="$1" -v c="$2" '$1==n {print $c}' "$BENCH_DIR/results" | median; }
echo
echo "proxy miss path, ${CONNS} connections, median of ${ROUNDS} rounds of ${SECS}s ($(date -u +%F), $(nproc) cores, $(node --version), $(squid -v | head -1 | awk '{print $1" "$4}'))"
printf "%-10s %10s %9s %9s\n" "" "rps" "p50 ms" "p99 ms"
for n in direct gatehouse squid squid-2w; do
  printf "%-10s %10.0f %9.3f %9.3f\n" "$n" "$(med $n 2)" "$(med $n 3)" "$(med $n 4)"
done
awk -v g="$(med gatehouse 2)" -v s="$(med squid 2)" -v s2="$(med squid-2w 2)" -v gp="$(med gatehouse 4)" -v sp="$(med squid 4)" \
  'BEGIN { printf "gatehouse/squid rps ratio: %.2fx (target >= 1.5x), gatehouse/squid-2-workers %.2fx; p99 difference: %+.3f ms (target <= +1 ms)\n", g/s, g/s2, gp-sp }'
