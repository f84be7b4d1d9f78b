#!/usr/bin/env bash
# DNS: dnsperf against gatehouse, dnsmasq and Unbound, each forwarding to the same NSD content
# server on loopback (a wildcard zone, so every name exists), alternating in one run:
#  - cached: a small set of names asked over and over (all answered from each cache);
#  - miss, cache empty: names never asked before, right after a start;
#  - miss, cache full: names never asked before, after each cache was filled with CACHE_SIZE others.
# Each at two load shapes: 4 clients with 100 queries in flight (an office), and 20 clients with
# 200 in flight (saturating). Unbound runs twice: Debian's 1 thread and 2 threads (its best on 2
# cores). gatehouse runs as shipped, its query log written to a file, except dns.rateLimit: 0
# (dnsperf is one address far above the default 10000 a second). GH_BASELINE=DIR adds the
# gatehouse built in DIR (a checkout with dist/, e.g. the previous commit's) to the same
# alternating run, as gatehouse-base. The cached runs include node-echo, a bare Node UDP socket
# that sends each query back as its answer: the ceiling of one Node thread here. Prints QPS, p99
# latency and the ratios.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/bench/lib.sh"
need_debian dnsperf:dnsperf dnsmasq:dnsmasq-base unbound:unbound nsd:nsd

SECS=${SECS:-8}
# Rounds of the cached runs (the median is printed); misses are one run each (every name is new).
ROUNDS=${ROUNDS:-2}
CACHE_SIZE=${CACHE_SIZE:-10000}
NSD=$(free_port); GH=$(free_port); GB=$(free_port); DM=$(free_port); UB=$(free_port); UB2=$(free_port); ECHO=$(free_port)
SHAPES=("4 100" "20 200")
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
# start_gh NAME PORT TREE: a gatehouse from TREE (its bin/ and dist/), its files named NAME.
start_gh() {
  local name=$1 port=$2 tree=$3
  cat > "$BENCH_DIR/$name.yaml" <<CONF
rules: $BENCH_DIR/rules
listsDir: $BENCH_DIR/lists
proxy:
  listen: []
admin:
  listen: ""
dns:
  listen: ["127.0.0.1:$port"]
  upstreams: ["127.0.0.1:$NSD"]
  rateLimit: 0
  cache:
    entries: $CACHE_SIZE
log:
  level: warn
  access:
    file: $BENCH_DIR/$name-access.log
  queries:
    file: $BENCH_DIR/$name-queries.log
CONF
  mkdir -p "$BENCH_DIR/rules"
  node "$tree/bin/gatehouse.js" start -c "$BENCH_DIR/$name.yaml" 2>"$BENCH_DIR/$name.err" &
  GH_PIDS+=($!)
  PIDS+=($!)
}
# The one-thread Node ceiling: no parsing, no cache, no log; the query with QR set is the answer.
node -e '
const s = require("node:dgram").createSocket("udp4");
s.on("message", (m, r) => { m[2] |= 0x80; s.send(m, r.port, r.address); });
s.bind(Number(process.argv[1]), "127.0.0.1");' "$ECHO" &
PIDS+=($!)

GH_PIDS=()
restart_all() {
  for p in "${GH_PIDS[@]:-}" ${DM_PID:-} "${UB_PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  UB_PIDS=()
  GH_PIDS=()
  sleep 0.5
  start_gh gh-dns "$GH" "$ROOT"
  [ -n "${GH_BASELINE:-}" ] && start_gh gh-base "$GB" "$GH_BASELINE"
  start_dnsmasq; start_unbound "$UB" 1; start_unbound "$UB2" 2
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

# perf NAME PORT FILE CLIENTS INFLIGHT [once]: "NAME qps p99ms"; p99 from a short verbose run on
# the same file at the same shape. "once" sends each line of FILE at most once (miss runs: every
# name new); otherwise FILE loops.
perf() {
  local name=$1 port=$2 file=$3 c=$4 q=$5 once=${6:-}
  local out qps p99
  out=$(dnsperf -s 127.0.0.1 -p "$port" -d "$file" -l "$SECS" -c "$c" -q "$q" -t 2 ${once:+-n 1} 2>&1)
  qps=$(awk '/Queries per second/ {print $4}' <<<"$out")
  # Only answers count: a server that fails fast must not look fast.
  local ok
  ok=$(awk '/Response codes/ {for (i = 1; i <= NF; i++) if ($i == "NOERROR") {gsub(/[(%),]/, "", $(i+2)); print $(i+2)}}' <<<"$out")
  [ "${ok%.*}" -ge 99 ] 2>/dev/null || echo "warning: $name answered NOERROR to only ${ok:-0}% of queries: $(grep -E 'Response codes|lost' <<<"$out" | tr -s ' ' | tr '\n' ' ')" >&2
  local p99file=$file
  [ -n "$once" ] && p99file=${file%.txt}-p99.txt
  p99=$(dnsperf -s 127.0.0.1 -p "$port" -d "$p99file" -l 2 -c "$c" -q "$q" -t 2 ${once:+-n 1} -v 2>/dev/null |
    awk '$1 == ">" {print $NF}' | sort -g | awk '{a[NR]=$1} END {if (NR) printf "%.3f", a[int(NR*0.99)]*1000; else print "nan"}')
  echo "$name $qps $p99"
}

SERVERS=(gatehouse:$GH dnsmasq:$DM unbound:$UB unbound2t:$UB2)
[ -n "${GH_BASELINE:-}" ] && SERVERS=(gatehouse:$GH gatehouse-base:$GB dnsmasq:$DM unbound:$UB unbound2t:$UB2)
NAMES=("${SERVERS[@]%%:*}")
CACHED_SERVERS=("${SERVERS[@]}" node-echo:$ECHO)
shape_tag() { echo "c$1q$2"; }

restart_all
: >"$BENCH_DIR/results"
# Warm-up: JIT, pools and caches.
for s in "${CACHED_SERVERS[@]}"; do dnsperf -s 127.0.0.1 -p "${s#*:}" -d "$BENCH_DIR/hot.txt" -l 3 -c 20 -q 200 >/dev/null 2>&1; done
for shape in "${SHAPES[@]}"; do
  read -r c q <<<"$shape"
  for ((round = 1; round <= ROUNDS; round++)); do
    for s in "${CACHED_SERVERS[@]}"; do
      perf "cached-$(shape_tag "$c" "$q")-${s%%:*}" "${s#*:}" "$BENCH_DIR/hot.txt" "$c" "$q" | tee -a "$BENCH_DIR/results"
    done
  done
done

for shape in "${SHAPES[@]}"; do
  read -r c q <<<"$shape"
  tag=$(shape_tag "$c" "$q")
  restart_all
  for s in "${SERVERS[@]}"; do
    perf "empty-$tag-${s%%:*}" "${s#*:}" "$(miss_file "e$tag${s%%:*}")" "$c" "$q" once | tee -a "$BENCH_DIR/results"
  done
  restart_all
  for s in "${SERVERS[@]}"; do
    dnsperf -s 127.0.0.1 -p "${s#*:}" -d "$BENCH_DIR/fill.txt" -n 1 -c 10 -q 100 >/dev/null 2>&1
  done
  for s in "${SERVERS[@]}"; do
    perf "full-$tag-${s%%:*}" "${s#*:}" "$(miss_file "f$tag${s%%:*}")" "$c" "$q" once | tee -a "$BENCH_DIR/results"
  done
done

med() { awk -v n="$1" -v c="$2" '$1==n {print $c}' "$BENCH_DIR/results" | median; }
echo
echo "DNS, dnsperf at two shapes (clients x queries in flight), ${SECS}s per run, caches of $CACHE_SIZE entries, gatehouse's query log to a file ($(date -u +%F), $(nproc) cores, $(node --version), dnsmasq $(dnsmasq -v | head -1 | awk '{print $3}'), unbound $(unbound -V | head -1 | awk '{print $2}'))"
printf "%-32s %10s %10s\n" "" "qps" "p99 ms"
for shape in "${SHAPES[@]}"; do
  read -r c q <<<"$shape"
  for kind in cached empty full; do
    names=("${NAMES[@]}")
    [ "$kind" = cached ] && names+=(node-echo)
    for n in "${names[@]}"; do
      printf "%-32s %10.0f %10s\n" "$kind-$(shape_tag "$c" "$q")-$n" "$(med "$kind-$(shape_tag "$c" "$q")-$n" 2)" "$(med "$kind-$(shape_tag "$c" "$q")-$n" 3)"
    done
  done
done
for shape in "${SHAPES[@]}"; do
  read -r c q <<<"$shape"
  t=$(shape_tag "$c" "$q")
  awk -v t="$t ($c clients, $q in flight)" -v g="$(med "cached-$t-gatehouse" 2)" -v d="$(med "cached-$t-dnsmasq" 2)" -v u="$(med "cached-$t-unbound" 2)" \
    -v u2="$(med "cached-$t-unbound2t" 2)" -v e="$(med "cached-$t-node-echo" 2)" \
    'BEGIN { printf "cached %s: gatehouse/dnsmasq %.2fx (target >= 1.0x), gatehouse/unbound %.2fx, gatehouse/unbound-2-threads %.2fx (target >= 0.8x); gatehouse/node-echo %.2fx, node-echo/dnsmasq %.2fx, node-echo/unbound-2-threads %.2fx\n", t, g/d, g/u, g/u2, g/e, e/d, e/u2 }'
  awk -v t="$t" -v ge="$(med "empty-$t-gatehouse" 2)" -v gf="$(med "full-$t-gatehouse" 2)" -v ue="$(med "empty-$t-unbound" 2)" -v uf="$(med "full-$t-unbound" 2)" \
    -v de="$(med "empty-$t-dnsmasq" 2)" -v df="$(med "full-$t-dnsmasq" 2)" -v u2e="$(med "empty-$t-unbound2t" 2)" -v u2f="$(med "full-$t-unbound2t" 2)" \
    'BEGIN { printf "miss %s: gatehouse/dnsmasq %.2fx empty, %.2fx full; gatehouse/unbound %.2fx empty, %.2fx full; gatehouse/unbound-2-threads %.2fx empty, %.2fx full (target >= 1.0x); full/empty: gatehouse %.2f, unbound %.2f, dnsmasq %.2f\n", t, ge/de, gf/df, ge/ue, gf/uf, ge/u2e, gf/u2f, gf/ge, uf/ue, df/de }'
  if [ -n "${GH_BASELINE:-}" ]; then
    awk -v t="$t" -v c="$(med "cached-$t-gatehouse" 2)" -v cb="$(med "cached-$t-gatehouse-base" 2)" -v e="$(med "empty-$t-gatehouse" 2)" \
      -v eb="$(med "empty-$t-gatehouse-base" 2)" -v f="$(med "full-$t-gatehouse" 2)" -v fb="$(med "full-$t-gatehouse-base" 2)" \
      'BEGIN { printf "gatehouse/gatehouse-base %s: cached %.2fx, empty %.2fx, full %.2fx\n", t, c/cb, e/eb, f/fb }'
  fi
done
