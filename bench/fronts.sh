#!/usr/bin/env bash
# Web fronts (reverse proxy): a 1 KiB and a 64 KiB object from an nginx origin, through a gatehouse
# front, nginx (proxy_pass with a keepalive upstream, 1 worker) and HAProxy (1 thread), alternating
# in rounds with wrk. Then the same objects from a cache: the gatehouse front with cache: true,
# nginx with proxy_cache, and Varnish. Prints rps, p99 and the ratios.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/bench/lib.sh"
need_debian wrk:wrk nginx:nginx-light haproxy:haproxy varnishd:varnish

ROUNDS=${ROUNDS:-3}
SECS=${SECS:-6}
CONNS=${CONNS:-50}
ORIGIN=$(free_port); GH=$(free_port); GHC=$(free_port); NG=$(free_port); NGC=$(free_port); HA=$(free_port); VA=$(free_port)
start_nginx_origin "$ORIGIN"
(cd "$ROOT" && npm run build >/dev/null)
D=$BENCH_DIR

write_gatehouse_conf "$D/gh" "proxy:
  listen: []
  cache: { memory: 256MiB }
fronts:
  - name: plain
    protocol: http
    listen: [\"127.0.0.1:$GH\"]
    hosts: [\"127.0.0.1\"]
    backend: \"http://127.0.0.1:$ORIGIN\"
    health: { interval: 10s, path: /cache/1k }
  - name: cached
    protocol: http
    listen: [\"127.0.0.1:$GHC\"]
    hosts: [\"127.0.0.1\"]
    backend: \"http://127.0.0.1:$ORIGIN\"
    health: { interval: 10s, path: /cache/1k }
    cache: true"
run_gatehouse "$D/gh" "$GH"

mkdir -p "$D/ngx/cache"
start_nginx ngx "$NG" "  upstream origin { server 127.0.0.1:$ORIGIN; keepalive 64; }
  proxy_cache_path $D/ngx/cache keys_zone=c:16m max_size=256m inactive=1h;
  server {
    listen 127.0.0.1:$NG;
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_set_header Host \$host; }
  }
  server {
    listen 127.0.0.1:$NGC;
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_cache c; proxy_cache_valid 200 1h; }
  }"

cat >"$D/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 4096
  pidfile $D/haproxy.pid
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend fe
  bind 127.0.0.1:$HA
  default_backend be
backend be
  server origin 127.0.0.1:$ORIGIN
CONF
haproxy -f "$D/haproxy.cfg" -db >"$D/haproxy.out" 2>&1 &
PIDS+=($!)
wait_port "$HA"

mkdir -p "$D/varnish"
varnishd -F -a "127.0.0.1:$VA" -b "127.0.0.1:$ORIGIN" -s malloc,256m -n "$D/varnish" -P "$D/varnish.pid" -p thread_pool_min=10 \
  >"$D/varnish.out" 2>&1 &
PIDS+=($!)
wait_port "$VA"

: >"$D/results"
for size in 1k 64k; do
  path="/cache/$size"
  for p in "$GH" "$NG" "$HA" "$GHC" "$NGC" "$VA"; do run_wrk warm "$p" "http://127.0.0.1:$p$path" 2 "$CONNS" plain >/dev/null; done
  for r in $(seq 1 "$ROUNDS"); do
    run_wrk "gatehouse-$size" "$GH" "http://127.0.0.1:$GH$path" "$SECS" "$CONNS" plain | tee -a "$D/results"
    run_wrk "nginx-$size" "$NG" "http://127.0.0.1:$NG$path" "$SECS" "$CONNS" plain | tee -a "$D/results"
    run_wrk "haproxy-$size" "$HA" "http://127.0.0.1:$HA$path" "$SECS" "$CONNS" plain | tee -a "$D/results"
    run_wrk "gatehouse-cache-$size" "$GHC" "http://127.0.0.1:$GHC$path" "$SECS" "$CONNS" plain | tee -a "$D/results"
    run_wrk "nginx-cache-$size" "$NGC" "http://127.0.0.1:$NGC$path" "$SECS" "$CONNS" plain | tee -a "$D/results"
    run_wrk "varnish-$size" "$VA" "http://127.0.0.1:$VA$path" "$SECS" "$CONNS" plain | tee -a "$D/results"
  done
done

med() { awk -v n="$1" -v c="$2" '$1==n {print $c}' "$D/results" | median; }
echo
echo "web fronts, ${CONNS} connections, median of ${ROUNDS} rounds of ${SECS}s ($(date -u +%F), $(nproc) cores, $(node --version), $(nginx -v 2>&1 | awk '{print $3}'), $(haproxy -v | head -1 | awk '{print $1" "$3}'), $(varnishd -V 2>&1 | head -1 | awk '{print $2}' | tr -d '('))"
printf "%-22s %10s %9s\n" "" "rps" "p99 ms"
for size in 1k 64k; do
  for n in gatehouse nginx haproxy gatehouse-cache nginx-cache varnish; do printf "%-22s %10.0f %9.3f\n" "$n-$size" "$(med "$n-$size" 2)" "$(med "$n-$size" 4)"; done
  awk -v g="$(med "gatehouse-$size" 2)" -v h="$(med "haproxy-$size" 2)" -v n="$(med "nginx-$size" 2)" \
    -v gc="$(med "gatehouse-cache-$size" 2)" -v nc="$(med "nginx-cache-$size" 2)" -v v="$(med "varnish-$size" 2)" -v sz="$size" \
    'BEGIN { printf "%s: pass-through gatehouse/haproxy %.2fx (target >= 0.8x), gatehouse/nginx %.2fx; cached gatehouse/nginx-proxy_cache %.2fx (target >= 1.0x), gatehouse/varnish %.2fx\n", sz, g/h, g/n, gc/nc, gc/v }'
done
