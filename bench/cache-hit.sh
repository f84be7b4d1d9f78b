#!/usr/bin/env bash
# Cache hits: a 1 KiB and a 64 KiB object (max-age=3600, from an nginx origin) fetched through
# gatehouse, Squid (memory cache, 1 worker, and 2 SMP workers sharing it) and Varnish (malloc storage), alternating in rounds,
# with wrk sending absolute-form requests. Prints rps, p99, resident memory and the ratios.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/bench/lib.sh"
need_debian wrk:wrk squid:squid nginx:nginx-light varnishd:varnish

ROUNDS=${ROUNDS:-3}
SECS=${SECS:-8}
CONNS=${CONNS:-50}
ORIGIN=$(free_port); GH=$(free_port); SQ=$(free_port); SQ2=$(free_port); VA=$(free_port)
start_nginx_origin "$ORIGIN"
start_gatehouse "$GH" "  cache: { memory: 256MiB }"
start_squid "$SQ" 256
start_squid "$SQ2" 256 2
mkdir -p "$BENCH_DIR/varnish"
varnishd -F -a "127.0.0.1:$VA" -b "127.0.0.1:$ORIGIN" -s malloc,256m -n "$BENCH_DIR/varnish" -P "$BENCH_DIR/varnish.pid" \
  -p thread_pool_min=10 >"$BENCH_DIR/varnish.out" 2>&1 &
PIDS+=($!)
wait_port "$VA"
VA_PID=$(cat "$BENCH_DIR/varnish.pid" 2>/dev/null || echo "$!")

: >"$BENCH_DIR/results"
for size in 1k 64k; do
  URL="http://127.0.0.1:$ORIGIN/cache/$size"
  for p in "$GH" "$SQ" "$SQ2" "$VA"; do run_wrk warm "$p" "$URL" 2 "$CONNS" >/dev/null; done
  for r in $(seq 1 "$ROUNDS"); do
    echo "$(run_wrk "gatehouse-$size" "$GH" "$URL" "$SECS" "$CONNS") $(rss_mib "$GATEHOUSE_PID")" | tee -a "$BENCH_DIR/results"
    echo "$(run_wrk "squid-$size" "$SQ" "$URL" "$SECS" "$CONNS") $(squid_rss_mib "$SQ")" | tee -a "$BENCH_DIR/results"
    echo "$(run_wrk "squid2w-$size" "$SQ2" "$URL" "$SECS" "$CONNS") $(squid_rss_mib "$SQ2")" | tee -a "$BENCH_DIR/results"
    echo "$(run_wrk "varnish-$size" "$VA" "$URL" "$SECS" "$CONNS") $(ps -o rss= -C cache-main 2>/dev/null | awk '{s+=$1} END {printf "%.0f", s/1024}')" | tee -a "$BENCH_DIR/results"
  done
done

med() { awk -v n="$1" -v c="$2" '$1==n {print $c}' "$BENCH_DIR/results" | median; }
echo
echo "cache hits, ${CONNS} connections, median of ${ROUNDS} rounds of ${SECS}s ($(date -u +%F), $(nproc) cores, $(node --version), $(squid -v | head -1 | awk '{print $1" "$4}'), $(varnishd -V 2>&1 | head -1 | awk '{print $2}' | tr -d '('))"
printf "%-16s %10s %9s %9s\n" "" "rps" "p99 ms" "RSS MiB"
for size in 1k 64k; do
  for n in gatehouse squid squid2w varnish; do printf "%-16s %10.0f %9.3f %9s\n" "$n-$size" "$(med "$n-$size" 2)" "$(med "$n-$size" 4)" "$(med "$n-$size" 5)"; done
  awk -v g="$(med "gatehouse-$size" 2)" -v s="$(med "squid-$size" 2)" -v s2="$(med "squid2w-$size" 2)" -v v="$(med "varnish-$size" 2)" -v sz="$size" \
    'BEGIN { if (sz == "1k") printf "%s: gatehouse/squid %.2fx (target >= 1.5x), gatehouse/squid-2-workers %.2fx (target >= 1.0x), gatehouse/varnish %.2fx (target >= 0.8x)\n", sz, g/s, g/s2, g/v;
             else printf "%s: gatehouse/squid %.2fx, gatehouse/squid-2-workers %.2fx, gatehouse/varnish %.2fx (target >= 1.0x)\n", sz, g/s, g/s2, g/v }'
done
echo "gatehouse resident memory $(rss_mib "$GATEHOUSE_PID") MiB over its $(($(pgrep -P "$GATEHOUSE_PID" | wc -l) + 1)) processes, with proxy.cache.memory 256 MiB per worker (target < 406 MiB)"
