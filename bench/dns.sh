#!/usr/bin/env bash
# DNS: dnsperf against gatehouse, dnsmasq and Unbound, each forwarding to the same NSD content
# server on loopback (a wildcard zone, so every name exists), alternating in one run:
#  - cached: a small set of names asked over and over (all answered from each cache);
#  - miss, cache empty: names never asked before, right after a start;
#  - miss, cache full: names never asked before, after each cache was filled with CACHE_SIZE others.
# Unbound runs twice: Debian's 1 thread and 2 threads (its best on 2 cores). Prints QPS, p99
# latency and the ratios.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/bench/lib.sh"
need_debian dnsperf:dnsperf dnsmasq:dnsmasq-base unbound:unbound nsd:nsd

SECS=${SECS:-8}
CACHE_SIZE=${CACHE_SIZE:-10000}
NSD=$(free_port); GH=$(free_port); DM=$(free_port); UB=$(free_port); UB2=$(free_port)
UB_PIDS=()

mkdir -p "$BENCH_DIR/nsd"
cat > "$BENCH_DIR/nsd/bench.test.zone" <<ZONE
\$ORIGIN bench.test.
\$TTL 3600
@ IN SOA ns.bench.test. admin.bench.test. 1 3600 600 86400 300
@ IN NS ns.bench.test.
ns IN A 127.0.0.1
* IN A 192.0.2.1
ZONE
cat > "$BENCH_DIR/nsd/nsd.conf" <<CONF
server:
  ip-address: 127.0.0.1
  port: $NSD
  username: ""
  chroot: ""
  zonesdir: "$BENCH_DIR/nsd"
  pidfile: "$BENCH_DIR/nsd/nsd.pid"
  database: ""
  zonelistfile: "$BENCH_DIR/nsd/zone.list"
  xfrdfile: "$BENCH_DIR/nsd/xfrd.state"
  xfrdir: "$BENCH_DIR/nsd"
  logfile: "$BENCH_DIR/nsd/nsd.log"
  server-count: 1
  verbosity: 0
  # NSD rate-limits responses by default (about 200 a second per client): off, or it is the bottleneck.
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: bench.test
  zonefile: bench.test.zone
CONF
nsd -d -c "$BENCH_DIR/nsd/nsd.conf" 2>"$BENCH_DIR/nsd.err" &
PIDS+=($!)

start_dnsmasq() {
  dnsmasq -k --conf-file=/dev/null --port="$DM" --listen-address=127.0.0.1 --bind-interfaces --no-resolv --no-hosts \
    --server="127.0.0.1#$NSD" --cache-size="$CACHE_SIZE" --pid-file="$BENCH_DIR/dnsmasq.pid" --user=root 2>"$BENCH_DIR/dnsmasq.err" &
  DM_PID=$!
  PIDS+=($DM_PID)
}
# start_unbound PORT THREADS: its config, pid and log are named by the thread count.
start_unbound() {
  local port=$1 threads=$2
  cat > "$BENCH_DIR/unbound-$threads.conf" <<CONF
server:
  interface: 127.0.0.1
  port: $port
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "$BENCH_DIR"
  pidfile: "$BENCH_DIR/unbound-$threads.pid"
  num-threads: $threads
  access-control: 127.0.0.0/8 allow
  do-ip6: no
  do-not-query-localhost: no
  module-config: "iterator"
  # .test is a special-use domain that Unbound answers NXDOMAIN itself unless told otherwise.
  local-zone: "test." nodefault
  qname-minimisation: no
  msg-cache-size: 64m
  rrset-cache-size: 128m
  verbosity: 0
  use-syslog: no
  logfile: "$BENCH_DIR/unbound-$threads.log"
forward-zone:
  name: "."
  forward-addr: 127.0.0.1@$NSD
CONF
  unbound -d -c "$BENCH_DIR/unbound-$threads.conf" 2>"$BENCH_DIR/unbound-$threads.err" &
  UB_PIDS+=($!)
  PIDS+=($!)
}
start_gh() {
  cat > "$BENCH_DIR/gh-dns.yaml" <<CONF
rules: $BENCH_DIR/rules
listsDir: $BENCH_DIR/lists
proxy:
  listen: []
admin:
  listen: ""
dns:
  listen: ["127.0.0.1:$GH"]
  upstreams: ["127.0.0.1:$NSD"]
  rateLimit: 0
  cache:
    entries: $CACHE_SIZE
log:
  level: warn
  access:
    file: ""
  queries:
    file: ""
CONF
  mkdir -p "$BENCH_DIR/rules"
  node "$ROOT/bin/gatehouse.js" start -c "$BENCH_DIR/gh-dns.yaml" 2>"$BENCH_DIR/gh-dns.err" &
  GH_PID=$!
  PIDS+=($GH_PID)
}
restart_all() {
  for p in ${GH_PID:-} ${DM_PID:-} "${UB_PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  UB_PIDS=()
  sleep 0.5
  start_gh; start_dnsmasq; start_unbound "$UB" 1; start_unbound "$UB2" 2
  sleep 1.5
}

# Query files.
awk 'BEGIN { for (i = 0; i < 1000; i++) printf "hot%d.bench.test A\n", i }' > "$BENCH_DIR/hot.txt"
awk -v n="$CACHE_SIZE" 'BEGIN { for (i = 0; i < n; i++) printf "fill%d.bench.test A\n", i }' > "$BENCH_DIR/fill.txt"
miss_file() {
  awk -v p="$1" 'BEGIN { for (i = 0; i < 400000; i++) printf "%s%d.bench.test A\n", p, i }' > "$BENCH_DIR/$1.txt"
  awk -v p="$1" 'BEGIN { for (i = 0; i < 100000; i++) printf "%s-p99-%d.bench.test A\n", p, i }' > "$BENCH_DIR/$1-p99.txt"
  echo "$BENCH_DIR/$1.txt"
}

# dnsperf NAME PORT FILE [once]: "NAME qps p99ms"; p99 from a short verbose run on the same file.
# "once" sends each line of FILE at most once (miss runs: every name new); otherwise FILE loops.
perf() {
  local name=$1 port=$2 file=$3 once=${4:-}
  local out qps p99
  out=$(dnsperf -s 127.0.0.1 -p "$port" -d "$file" -l "$SECS" -c 20 -q 200 -t 2 ${once:+-n 1} 2>&1)
  qps=$(awk '/Queries per second/ {print $4}' <<<"$out")
  # Only answers count: a server that fails fast must not look fast.
  local ok
  ok=$(awk '/Response codes/ {for (i = 1; i <= NF; i++) if ($i == "NOERROR") {gsub(/[(%),]/, "", $(i+2)); print $(i+2)}}' <<<"$out")
  [ "${ok%.*}" -ge 99 ] 2>/dev/null || echo "warning: $name answered NOERROR to only ${ok:-0}% of queries: $(grep -E 'Response codes|lost' <<<"$out" | tr -s ' ' | tr '\n' ' ')" >&2
  local p99file=$file
  [ -n "$once" ] && p99file=${file%.txt}-p99.txt
  p99=$(dnsperf -s 127.0.0.1 -p "$port" -d "$p99file" -l 2 -c 20 -q 200 -t 2 ${once:+-n 1} -v 2>/dev/null |
    awk '$1 == ">" {print $NF}' | sort -g | awk '{a[NR]=$1} END {if (NR) printf "%.3f", a[int(NR*0.99)]*1000; else print "nan"}')
  echo "$name $qps $p99"
}

restart_all
: >"$BENCH_DIR/results"
# Warm-up: JIT, pools and caches.
SERVERS=(gatehouse:$GH dnsmasq:$DM unbound:$UB unbound2t:$UB2)
for s in "${SERVERS[@]}"; do dnsperf -s 127.0.0.1 -p "${s#*:}" -d "$BENCH_DIR/hot.txt" -l 3 -c 20 -q 200 >/dev/null 2>&1; done
for round in 1 2; do
  perf "cached-gatehouse" "$GH" "$BENCH_DIR/hot.txt" | tee -a "$BENCH_DIR/results"
  perf "cached-dnsmasq" "$DM" "$BENCH_DIR/hot.txt" | tee -a "$BENCH_DIR/results"
  perf "cached-unbound" "$UB" "$BENCH_DIR/hot.txt" | tee -a "$BENCH_DIR/results"
  perf "cached-unbound2t" "$UB2" "$BENCH_DIR/hot.txt" | tee -a "$BENCH_DIR/results"
done

restart_all
for s in "${SERVERS[@]}"; do
  perf "empty-${s%%:*}" "${s#*:}" "$(miss_file "e${s%%:*}")" once | tee -a "$BENCH_DIR/results"
done

restart_all
for s in "${SERVERS[@]}"; do
  dnsperf -s 127.0.0.1 -p "${s#*:}" -d "$BENCH_DIR/fill.txt" -n 1 -c 10 -q 100 >/dev/null 2>&1
done
for s in "${SERVERS[@]}"; do
  perf "full-${s%%:*}" "${s#*:}" "$(miss_file "f${s%%:*}")" once | tee -a "$BENCH_DIR/results"
done

med() { awk -v n="$1" -v c="$2" '$1==n {print $c}' "$BENCH_DIR/results" | median; }
echo
echo "DNS, dnsperf 20 clients, ${SECS}s per run, caches of $CACHE_SIZE entries ($(date -u +%F), $(nproc) cores, $(node --version), dnsmasq $(dnsmasq -v | head -1 | awk '{print $3}'), unbound $(unbound -V | head -1 | awk '{print $2}'))"
printf "%-22s %10s %10s\n" "" "qps" "p99 ms"
for kind in cached empty full; do
  for n in gatehouse dnsmasq unbound unbound2t; do printf "%-22s %10.0f %10s\n" "$kind-$n" "$(med "$kind-$n" 2)" "$(med "$kind-$n" 3)"; done
done
awk -v g="$(med cached-gatehouse 2)" -v d="$(med cached-dnsmasq 2)" -v u="$(med cached-unbound 2)" -v u2="$(med cached-unbound2t 2)" \
  'BEGIN { printf "cached: gatehouse/dnsmasq %.2fx (target >= 1.0x), gatehouse/unbound %.2fx (target >= 0.8x), gatehouse/unbound-2-threads %.2fx\n", g/d, g/u, g/u2 }'
awk -v ge="$(med empty-gatehouse 2)" -v gf="$(med full-gatehouse 2)" -v ue="$(med empty-unbound 2)" -v uf="$(med full-unbound 2)" -v de="$(med empty-dnsmasq 2)" -v df="$(med full-dnsmasq 2)" \
  -v u2e="$(med empty-unbound2t 2)" -v u2f="$(med full-unbound2t 2)" \
  'BEGIN { printf "miss: gatehouse/unbound %.2fx empty, %.2fx full (target >= 1.0x), gatehouse/unbound-2-threads %.2fx empty, %.2fx full; full/empty: gatehouse %.2f, unbound %.2f, dnsmasq %.2f\n", ge/ue, gf/uf, ge/u2e, gf/u2f, gf/ge, uf/ue, df/de }'
