#!/usr/bin/env bash
# Intercepted HTTPS: a 1 KiB object (max-age=3600) from an nginx HTTPS origin, fetched through
# gatehouse (proxy.intercept: "*") and through Squid with ssl-bump (Debian's squid-openssl, 1 worker
# and 2 SMP workers), alternating in rounds. wrk cannot speak TLS inside CONNECT, so: cache hits on
# kept-alive tunnels with curl --parallel (one curl process, C, verifying the certificates; rps and
# p50/p99 of its per-transfer times), and a new tunnel and TLS handshake per request with ab
# (handshakes a second). Then the time gatehouse takes to mint a leaf.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/bench/lib.sh"
need_debian squid:squid-openssl nginx:nginx-light openssl:openssl ab:apache2-utils curl:curl
[ -x /usr/lib/squid/security_file_certgen ] || { echo "Squid must be squid-openssl (ssl-bump)" >&2; exit 1; }

ROUNDS=${ROUNDS:-3}
SECS=${SECS:-6}
CONNS=${CONNS:-20}
TRANSFERS=${TRANSFERS:-20000}
ORIGIN=$(free_port); GH=$(free_port); SQ=$(free_port); SQ2=$(free_port)
D=$BENCH_DIR
(cd "$ROOT" && npm run build >/dev/null)

# The origin's certificate, from a CA that both proxies are told to trust for upstream connections.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$D/upca.key" -out "$D/upca.pem" -days 2 \
  -subj "/CN=bench upstream CA" -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$D/origin.key" -subj "/CN=shop.bench" \
  -addext "subjectAltName=DNS:shop.bench" 2>/dev/null |
  openssl x509 -req -CA "$D/upca.pem" -CAkey "$D/upca.key" -days 2 -copy_extensions copy -out "$D/origin.pem" 2>/dev/null
# Squid's bumping CA (RSA, as Squid's certificate generator expects).
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$D/squidca.key" -out "$D/squidca.pem" -days 2 -subj "/CN=bench squid CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null

mkdir -p "$D/www"
head -c 1024 /dev/urandom | base64 -w0 | head -c 1024 >"$D/www/1k"
chmod 755 "$D" "$D/www"
chmod 644 "$D/www/1k" "$D/origin.pem" "$D/origin.key"
start_nginx origin "$ORIGIN" "  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$ORIGIN ssl;
    ssl_certificate $D/origin.pem;
    ssl_certificate_key $D/origin.key;
    location /cache/ { alias $D/www/; add_header Cache-Control \"max-age=3600\"; }
  }"

# gatehouse: its own office CA, the upstream CA in certs/upstream-ca, shop.bench in rules/hosts.
write_gatehouse_conf "$D/gh" "certs: ./certs
proxy:
  listen: [\"127.0.0.1:$GH\"]
  intercept: [\"*\"]
  interceptPorts: [$ORIGIN]
  connectPorts: [$ORIGIN]
  cache: { memory: 256MiB }"
mkdir -p "$D/gh/certs/upstream-ca"
cp "$D/upca.pem" "$D/gh/certs/upstream-ca/"
echo "127.0.0.1 shop.bench" >"$D/gh/rules/hosts"
node "$ROOT/bin/gatehouse.js" ca init -c "$D/gh/gatehouse.yaml" >/dev/null
run_gatehouse "$D/gh" "$GH"

# Squid with ssl-bump: bump everything, trust the upstream CA, resolve shop.bench from a hosts file.
start_squid_bump() {
  local port=$1 workers=$2 dir="$D/squid-$2"
  mkdir -p "$dir"
  echo "127.0.0.1 shop.bench" >"$dir/hosts"
  /usr/lib/squid/security_file_certgen -c -s "$dir/ssl_db" -M 16MB >/dev/null
  cat >"$dir/squid.conf" <<CONF
http_port 127.0.0.1:$port ssl-bump generate-host-certificates=on dynamic_cert_mem_cache_size=16MB tls-cert=$D/squidca.pem tls-key=$D/squidca.key
sslcrtd_program /usr/lib/squid/security_file_certgen -s $dir/ssl_db -M 16MB
sslcrtd_children 5
acl step1 at_step SslBump1
ssl_bump peek step1
ssl_bump bump all
tls_outgoing_options cafile=$D/upca.pem
hosts_file $dir/hosts
pid_filename $dir/squid.pid
cache_log $dir/cache.log
access_log stdio:$dir/access.log
coredump_dir $dir
cache_mem 256 MB
maximum_object_size_in_memory 1 MB
cache_dir null /tmp
workers $workers
acl localnet src 127.0.0.0/8
acl bench_port port $ORIGIN
acl CONNECT method CONNECT
http_access allow localnet
http_access deny all
visible_hostname squid-bench
shutdown_lifetime 0 seconds
CONF
  chmod -R 777 "$dir"
  run_squid "$dir" "$port" "$workers"
}
start_squid_bump "$SQ" 1
start_squid_bump "$SQ2" 2

URL="https://shop.bench:$ORIGIN/cache/1k"
for _ in $(seq 1 "$TRANSFERS"); do printf 'url = "%s"\noutput = /dev/null\n' "$URL"; done >"$D/urls.cfg"

# hits NAME PORT CA: TRANSFERS requests over CONNS kept-alive tunnels; prints "NAME rps p50 p99 errors".
hits() {
  local start end
  start=$(date +%s.%N)
  curl -s --no-progress-meter --parallel --parallel-max "$CONNS" -x "http://127.0.0.1:$2" --cacert "$3" \
    -w "%{time_total} %{http_code}\n" -K "$D/urls.cfg" >"$D/times" || true
  end=$(date +%s.%N)
  sort -g "$D/times" | awk -v n="$1" -v s="$start" -v e="$end" \
    '{t[NR]=$1*1000; if ($2!=200) bad++} END {printf "%s %.2f %.3f %.3f %d\n", n, NR/(e-s), t[int(NR*0.5)], t[int(NR*0.99)], bad+0}'
}

# handshakes NAME PORT: a new tunnel and TLS handshake for every request, for SECS seconds.
handshakes() {
  local out
  out=$(ab -X "127.0.0.1:$2" -c "$CONNS" -t "$SECS" -n 10000000 "$URL" 2>&1)
  awk -v n="$1" '/Requests per second/ {r=$4} /Failed requests/ {f=$3} $1=="50%" {p50=$2} $1=="99%" {p99=$2} \
    END {printf "%s %.2f %.3f %.3f %d\n", n, r, p50, p99, f}' <<<"$out"
}

: >"$D/results"
hits warm "$GH" "$D/gh/certs/ca.crt" >/dev/null
hits warm "$SQ" "$D/squidca.pem" >/dev/null
hits warm "$SQ2" "$D/squidca.pem" >/dev/null
for r in $(seq 1 "$ROUNDS"); do
  hits gatehouse "$GH" "$D/gh/certs/ca.crt" | tee -a "$D/results"
  hits squid "$SQ" "$D/squidca.pem" | tee -a "$D/results"
  hits squid-2w "$SQ2" "$D/squidca.pem" | tee -a "$D/results"
  handshakes gatehouse-hs "$GH" | tee -a "$D/results"
  handshakes squid-hs "$SQ" | tee -a "$D/results"
  handshakes squid-2w-hs "$SQ2" | tee -a "$D/results"
done
awk '$5 > 0 {print "warning: " $1 " had " $5 " errors" > "/dev/stderr"}' "$D/results"

MINT=$(cd "$ROOT" && node --input-type=module -e '
  import { mkdtempSync } from "node:fs"; import { tmpdir } from "node:os"; import { join } from "node:path";
  import { OfficeCa } from "./dist/tls/ca.js"; import { LeafMinter } from "./dist/tls/leaf.js";
  const minter = new LeafMinter(OfficeCa.create(mkdtempSync(join(tmpdir(), "gh-mint-")), "bench CA"));
  for (let i = 0; i < 200; i++) minter.mint(`warm${i}.example`);
  const t = [];
  for (let i = 0; i < 2000; i++) { const a = performance.now(); minter.mint(`site${i}.example`); t.push(performance.now() - a); }
  t.sort((a, b) => a - b);
  console.log(t[1000].toFixed(3), t[1980].toFixed(3));')

med() { awk -v n="$1" -v c="$2" '$1==n {print $c}' "$D/results" | median; }
echo
echo "intercepted HTTPS, ${CONNS} connections, median of ${ROUNDS} rounds (${TRANSFERS} hits; ${SECS}s of handshakes) ($(date -u +%F), $(nproc) cores, $(node --version), $(squid -v | head -1 | awk '{print $1" "$4}') ssl-bump)"
printf "%-16s %10s %9s %9s\n" "" "per s" "p50 ms" "p99 ms"
for n in gatehouse squid squid-2w gatehouse-hs squid-hs squid-2w-hs; do
  printf "%-16s %10.0f %9.3f %9.3f\n" "$n" "$(med $n 2)" "$(med $n 3)" "$(med $n 4)"
done
awk -v g="$(med gatehouse 2)" -v s="$(med squid 2)" -v s2="$(med squid-2w 2)" -v gh="$(med gatehouse-hs 2)" -v sh="$(med squid-hs 2)" \
  'BEGIN { printf "hits: gatehouse/squid %.2fx (target >= 1.5x), gatehouse/squid-2-workers %.2fx; handshakes: gatehouse/squid %.2fx\n", g/s, g/s2, gh/sh }'
echo "leaf mint: median ${MINT% *} ms, p99 ${MINT#* } ms (target: median < 1 ms)"
