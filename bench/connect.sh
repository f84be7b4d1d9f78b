#!/usr/bin/env bash
# CONNECT tunnels: an 8 MiB file from an nginx HTTPS origin (self-signed certificate), downloaded
# with curl -k through each proxy's tunnel, one new tunnel per download, in sequence, alternating
# in rounds between gatehouse, Squid (1 worker, and 2 SMP workers) and the floor (a bare node:http
# 'connect' handler piping two sockets, bench/connect-floor.mjs), after a warm-up. Prints per
# peer the download rate (bytes over curl's own transfer times), tunnels per CPU-second of the
# proxy's processes (utime+stime from /proc, summed over the process tree: Squid's kids too) and
# that CPU per tunnel split into user and system time, and the ratios. Loopback only.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/bench/lib.sh"
need_debian squid:squid nginx:nginx-light openssl:openssl curl:curl

ROUNDS=${ROUNDS:-3}
N=${N:-100}
SIZE_MIB=${SIZE_MIB:-8}
# Tunnels for a 1 KiB file through each proxy before measuring: a proxy runs for days, and Node's
# per-tunnel code costs about twice as much before the JIT has seen a few hundred tunnels.
WARM=${WARM:-300}
ORIGIN=$(free_port); GH=$(free_port); SQ=$(free_port); SQ2=$(free_port); FL=$(free_port)
D=$BENCH_DIR
(cd "$ROOT" && npm run build >/dev/null)

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$D/origin.key" -out "$D/origin.pem" -days 2 \
  -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" 2>/dev/null
mkdir -p "$D/www"
head -c "$((SIZE_MIB * 1048576))" /dev/urandom >"$D/www/file"
head -c 1024 /dev/urandom >"$D/www/1k"
chmod 755 "$D" "$D/www"
chmod 644 "$D/www/file" "$D/www/1k" "$D/origin.pem" "$D/origin.key"
start_nginx origin "$ORIGIN" "  server {
    listen 127.0.0.1:$ORIGIN ssl;
    ssl_certificate $D/origin.pem;
    ssl_certificate_key $D/origin.key;
    root $D/www;
  }"

# gatehouse as shipped (access log on), allowed to tunnel to the origin's port.
write_gatehouse_conf "$D/gh" "proxy:
  listen: [\"127.0.0.1:$GH\"]
  connectPorts: [$ORIGIN]"
run_gatehouse "$D/gh" "$GH"
GH_PID=$GATEHOUSE_PID
# start_squid allows any port to loopback clients (no SSL_ports ACL): CONNECT to $ORIGIN is allowed.
start_squid "$SQ"
SQ_PID=${PIDS[-1]}
start_squid "$SQ2" 64 2
SQ2_PID=${PIDS[-1]}
node "$ROOT/bench/connect-floor.mjs" "$FL" &
PIDS+=($!)
FL_PID=$!
wait_port "$FL"

URL="https://127.0.0.1:$ORIGIN/file"
TICK=$(getconf CLK_TCK)

# CPU ticks of process $1 and all its descendants, now: "utime stime".
tree_ticks() {
  local todo=("$1") all=() p
  while [ ${#todo[@]} -gt 0 ]; do
    all+=("${todo[@]}")
    mapfile -t todo < <(for p in "${todo[@]}"; do pgrep -P "$p" || true; done)
  done
  for p in "${all[@]}"; do sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null || true; done | awk '{u+=$12; s+=$13} END {print u+0, s+0}'
}

# tunnels NAME PORT PID COUNT: COUNT downloads in sequence, each over a new tunnel; prints
# "NAME MiB/s tunnels-per-CPU-second failures user-ms-per-tunnel system-ms-per-tunnel".
tunnels() {
  local name=$1 port=$2 pid=$3 count=$4 before after
  before=$(tree_ticks "$pid")
  for _ in $(seq 1 "$count"); do
    curl -sk -x "http://127.0.0.1:$port" -o /dev/null -w '%{size_download} %{time_total} %{http_code}\n' "$URL" || echo "0 0 000"
  done >"$D/times"
  after=$(tree_ticks "$pid")
  awk -v n="$name" -v c="$count" -v want="$((SIZE_MIB * 1048576))" -v a="$before" -v z="$after" -v tick="$TICK" \
    'BEGIN {split(a, x, " "); split(z, y, " "); u=y[1]-x[1]; k=y[2]-x[2]; cpu=u+k}
     {b+=$1; t+=$2; if ($3!=200 || $1!=want) bad++}
     END {printf "%s %.1f %.1f %d %.2f %.2f\n", n, (t>0 ? b/t/1048576 : 0), (cpu>0 ? c/(cpu/tick) : 0), bad+0, 1000*u/tick/c, 1000*k/tick/c}' "$D/times"
}

# The pids whose process trees are measured: gatehouse's process, each Squid's master (its kids and
# coordinator are below it), the floor.
echo "processes measured: gatehouse $GH_PID; squid $SQ_PID ($(pgrep -P "$SQ_PID" | wc -l) kids); squid-2w $SQ2_PID ($(pgrep -P "$SQ2_PID" | wc -l) kids); floor $FL_PID" >&2

: >"$D/results"
for port in "$GH" "$SQ" "$SQ2" "$FL"; do
  for _ in $(seq 1 "$WARM"); do curl -sk -x "http://127.0.0.1:$port" -o /dev/null "https://127.0.0.1:$ORIGIN/1k" || true; done
  for _ in 1 2 3; do curl -sk -x "http://127.0.0.1:$port" -o /dev/null "$URL" || true; done
done
for r in $(seq 1 "$ROUNDS"); do
  tunnels gatehouse "$GH" "$GH_PID" "$N" | tee -a "$D/results"
  tunnels squid "$SQ" "$SQ_PID" "$N" | tee -a "$D/results"
  tunnels squid-2w "$SQ2" "$SQ2_PID" "$N" | tee -a "$D/results"
  tunnels floor "$FL" "$FL_PID" "$N" | tee -a "$D/results"
done
awk '$4 > 0 {print "warning: " $1 " had " $4 " failed downloads" > "/dev/stderr"}' "$D/results"

med() { awk -v n="$1" -v c="$2" '$1==n {print $c}' "$D/results" | median; }
echo
echo "CONNECT tunnels, ${SIZE_MIB} MiB over HTTPS per tunnel, curl in sequence, median of ${ROUNDS} rounds of ${N} after ${WARM} warm-up tunnels ($(date -u +%F), $(nproc) cores, $(node --version), $(squid -v | head -1 | awk '{print $1" "$4}'))"
printf "%-10s %10s %16s %18s\n" "" "MiB/s" "tunnels/CPU-s" "ms user+sys/tunnel"
for n in gatehouse squid squid-2w floor; do
  printf "%-10s %10.1f %16.1f %11.2f+%.2f\n" "$n" "$(med $n 2)" "$(med $n 3)" "$(med $n 5)" "$(med $n 6)"
done
awk -v g="$(med gatehouse 2)" -v s="$(med squid 2)" -v s2="$(med squid-2w 2)" -v f="$(med floor 2)" \
  -v gc="$(med gatehouse 3)" -v sc="$(med squid 3)" -v s2c="$(med squid-2w 3)" -v fc="$(med floor 3)" \
  'BEGIN { printf "gatehouse/squid MiB/s %.2fx (target >= 1.0x), gatehouse/squid-2-workers %.2fx, gatehouse/floor %.2fx\n", g/s, g/s2, g/f;
           printf "CPU per tunnel, gatehouse/squid: %.2fx (target < 1.0x), gatehouse/squid-2-workers %.2fx, gatehouse/floor %.2fx\n", sc/gc, s2c/gc, fc/gc }'
