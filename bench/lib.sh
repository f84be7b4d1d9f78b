# Shared helpers for the benchmarks: install peers from Debian, start them bound to loopback in a
# temp dir with their own config and pid file, stop them by PID, and run wrk.
set -euo pipefail

BENCH_DIR=$(mktemp -d /tmp/gatehouse-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  # Up to 3 s for a clean exit (an SMP Squid master stops its kids and removes its shared memory).
  for _ in $(seq 1 30); do
    local alive=0
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  [ -n "${KEEP_BENCH:-}" ] || rm -rf "$BENCH_DIR"
}
trap cleanup EXIT

need_debian() {
  local missing=()
  for pair in "$@"; do
    local cmd=${pair%%:*} pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} from Debian" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

wait_port() {
  local port=$1
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listening on 127.0.0.1:$port" >&2
  return 1
}

# start_nginx NAME PORT HTTP: nginx with 1 worker whose http block holds HTTP (servers, upstreams,
# caches), with its config, pid, logs and temp files in $BENCH_DIR/NAME; waits for PORT.
start_nginx() {
  local name=$1 port=$2 http=$3 dir="$BENCH_DIR/$1"
  mkdir -p "$dir"
  cat > "$dir/nginx.conf" <<CONF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
daemon off;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir; proxy_temp_path $dir; fastcgi_temp_path $dir; uwsgi_temp_path $dir; scgi_temp_path $dir;
$http
}
CONF
  # nginx workers run as an unprivileged user: they must reach the files and write their temp files.
  chmod 755 "$BENCH_DIR"
  chmod -R 777 "$dir"
  nginx -c "$dir/nginx.conf" 2>"$dir/nginx.err" &
  PIDS+=($!)
  wait_port "$port"
}

# nginx as the origin: fast enough that it is never what is measured.
start_nginx_origin() {
  local port=$1
  mkdir -p "$BENCH_DIR/nginx"
  head -c 1024 /dev/urandom | base64 -w0 | head -c 1024 > "$BENCH_DIR/nginx/1k"
  head -c 65536 /dev/urandom > "$BENCH_DIR/nginx/64k"
  chmod 755 "$BENCH_DIR/nginx"
  chmod 644 "$BENCH_DIR/nginx/1k" "$BENCH_DIR/nginx/64k"
  start_nginx origin "$port" "  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$port;
    root $BENCH_DIR/nginx;
    location = /nocache { add_header Cache-Control \"no-store\"; default_type text/plain; return 200 \"uncacheable response body, about sixty bytes long.........\n\"; }
    location /cache/ { alias $BENCH_DIR/nginx/; add_header Cache-Control \"max-age=3600\"; etag on; }
  }"
}

# Squid on port $1 with a memory cache of $2 MB and $3 SMP workers (1: Debian's default), in its own
# directory; its processes' total resident memory is squid_rss_mib PORT.
start_squid() {
  local port=$1 mem=${2:-64} workers=${3:-1} dir="$BENCH_DIR/squid-$1"
  mkdir -p "$dir"
  cat > "$dir/squid.conf" <<CONF
http_port 127.0.0.1:$port
pid_filename $dir/squid.pid
cache_log $dir/cache.log
access_log stdio:$dir/access.log
coredump_dir $dir
cache_mem $mem MB
maximum_object_size_in_memory 1 MB
cache_dir null /tmp
workers $workers
acl localnet src 127.0.0.0/8
http_access allow localnet
http_access deny all
visible_hostname squid-bench
shutdown_lifetime 0 seconds
CONF
  chmod 777 "$BENCH_DIR" "$dir"
  run_squid "$dir" "$port" "$workers"
}

# run_squid DIR PORT WORKERS: starts the Squid configured in DIR/squid.conf and waits for PORT.
run_squid() {
  local dir=$1 port=$2 workers=$3
  # -N runs one process that is master and worker whatever `workers` says: SMP needs --foreground
  # (a master with kids), and a service name of its own for its IPC sockets and shared memory.
  if [ "$workers" -gt 1 ]; then
    squid --foreground -n "sq$port" -f "$dir/squid.conf" 2>"$dir/squid.err" &
  else
    squid -N -f "$dir/squid.conf" 2>"$dir/squid.err" &
  fi
  PIDS+=($!)
  wait_port "$port"
}

squid_rss_mib() {
  pgrep -f "$BENCH_DIR/squid-$1/squid.conf" | while read -r p; do awk '/VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null; done |
    awk '{s+=$1} END {printf "%.0f", s/1024}'
}

# Writes $1/gatehouse.yaml: the keys given in $2 (proxy, fronts, certs...) and what every bench
# shares: rules in $1/rules, no DNS listener and no real DNS upstream (only loopback is touched), no
# admin, warnings only, an access log (part of the work measured).
write_gatehouse_conf() {
  local dir=$1 body=$2
  mkdir -p "$dir/rules"
  cat >"$dir/gatehouse.yaml" <<CONF
rules: ./rules
$body
dns:
  listen: []
  upstreams: ["127.0.0.1:9"]
admin:
  listen: ""
log:
  level: warn
  access:
    file: ./access.log
CONF
}

# Starts the gatehouse configured in $1 (node flags from GH_NODE_FLAGS) and waits for port $2.
run_gatehouse() {
  local dir=$1 port=$2
  node ${GH_NODE_FLAGS:-} "$ROOT/bin/gatehouse.js" start -c "$dir/gatehouse.yaml" 2>"$dir/gatehouse.err" &
  PIDS+=($!)
  GATEHOUSE_PID=$!
  wait_port "$port"
}

# The forward proxy on port $1, with more proxy keys in $2.
start_gatehouse() {
  local port=$1 extra=${2:-}
  write_gatehouse_conf "$BENCH_DIR/gh" "proxy:
  listen: [\"127.0.0.1:$port\"]
$extra"
  run_gatehouse "$BENCH_DIR/gh" "$port"
}

# Writes a wrk Lua script that sends absolute-form requests for $1, as browsers do to a proxy.
absolute_form_script() {
  local url=$1 file="$BENCH_DIR/abs-$RANDOM.lua"
  cat > "$file" <<LUA
wrk.path = "$url"
LUA
  echo "$file"
}

# run_wrk NAME PORT URL SECONDS CONNECTIONS [absolute]: prints "NAME rps p50ms p99ms"
run_wrk() {
  local name=$1 port=$2 url=$3 secs=$4 conns=$5 mode=${6:-absolute}
  local out
  if [ "$mode" = absolute ]; then
    out=$(wrk -t1 -c"$conns" -d"${secs}s" --latency -s "$(absolute_form_script "$url")" "http://127.0.0.1:$port/")
  else
    out=$(wrk -t1 -c"$conns" -d"${secs}s" --latency "$url")
  fi
  local rps p50 p99 errs
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errs=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
  # A run with error responses measures the wrong thing: say so on stderr, keep the columns intact.
  [ -n "$errs" ] && echo "warning: $name: $errs" >&2
  echo "$name $rps $(to_ms "$p50") $(to_ms "$p99")"
}

to_ms() {
  local v=$1
  case "$v" in
    *us) awk -v x="${v%us}" 'BEGIN{printf "%.3f", x/1000}' ;;
    *ms) awk -v x="${v%ms}" 'BEGIN{printf "%.3f", x}' ;;
    *s) awk -v x="${v%s}" 'BEGIN{printf "%.3f", x*1000}' ;;
    *) echo "$v" ;;
  esac
}

# Resident memory of process $1 and its children (gatehouse's supervisor and workers), in MiB.
rss_mib() { for p in "$1" $(pgrep -P "$1"); do awk '/VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null; done | awk '{s+=$1} END {printf "%.0f", s/1024}'; }

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
