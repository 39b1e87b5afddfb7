#!/usr/bin/env bash
# Load benchmark for marketd: startup time, throughput and latency of its read scenarios,
# and peak memory, on SQLite and on Postgres, with nginx serving the same bytes of the
# prices answer as the ceiling for an HTTP GET on this machine. Loopback traffic only,
# bounded runs.
#
#   tests/load/run.sh
#
# Environment (all optional):
#   BACKENDS      backends to measure, default "sqlite postgres"
#   PG_HOST       Postgres host, default 127.0.0.1 (must be loopback)
#   PG_PORT       default 5432
#   PG_USER       default postgres (trust auth expected)
#   PG_DB         scratch database, dropped and recreated, default marketd_load
#   DURATION      wrk run length, default 10s
#   CONNECTIONS   default 64
#   THREADS       default 2
#   WARMUP        warm-up length, default 3s
#   CARGO_JOBS    cargo -j, default 1
#   AUTH_OVERHEAD set to also measure SQLite with a build lacking the auth and rate-limit
#                 layers (backend "sqlite-noauth"), for the cost of authentication
#   NGINX         set to 0 to skip the nginx ceiling
#   CACHE_MS      response-cache lifetime of the third start (the *_cached scenarios),
#                 default 1000
#   STREAMS       live price streams held in the last scenario, default 1000
#   STREAM_SECONDS how long they are held, default 15
set -euo pipefail
# A thousand streams need a thousand sockets on each side, beyond the usual 1024.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

BACKENDS="${BACKENDS:-sqlite postgres}"
PG_HOST="${PG_HOST:-127.0.0.1}"
PG_PORT="${PG_PORT:-5432}"
PG_USER="${PG_USER:-postgres}"
PG_DB="${PG_DB:-marketd_load}"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-2}"
WARMUP="${WARMUP:-3s}"
CARGO_JOBS="${CARGO_JOBS:-1}"
CACHE_MS="${CACHE_MS:-1000}"
STREAMS="${STREAMS:-1000}"
STREAM_SECONDS="${STREAM_SECONDS:-15}"
STARTUP_TIMEOUT_S=300   # a fresh database is seeded before the listener opens
STOP_TIMEOUT_S=15

RESULTS_DIR="$ROOT/tests/load/results"
RAW_DIR="$RESULTS_DIR/raw"
BIN="$ROOT/target/release/marketd"

case "$PG_HOST" in
  127.0.0.1 | localhost | ::1) ;;
  *) echo "PG_HOST must be loopback (got $PG_HOST)" >&2; exit 2 ;;
esac

log() { printf '[load] %s\n' "$*" >&2; }
die() { printf '[load] ERROR: %s\n' "$*" >&2; exit 1; }

TMP="$(mktemp -d -t marketd-load.XXXXXX)"
SERVER_PID=""
cleanup() {
  if [[ -f "$TMP/nginx/nginx.pid" ]]; then kill -QUIT "$(cat "$TMP/nginx/nginx.pid")" 2>/dev/null || true; fi
  if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    sleep 1
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------- tools

ensure_wrk() {
  command -v wrk >/dev/null 2>&1 && return 0
  log "installing wrk"
  local sudo=""
  if [[ "$(id -u)" -ne 0 ]]; then sudo="sudo"; fi
  if ! $sudo apt-get install -y wrk >"$TMP/apt.log" 2>&1; then
    log "apt-get install failed; running apt-get update first"
    $sudo apt-get update >>"$TMP/apt.log" 2>&1
    $sudo apt-get install -y wrk >>"$TMP/apt.log" 2>&1 || { cat "$TMP/apt.log" >&2; die "could not install wrk"; }
  fi
}

# ensure_package COMMAND PACKAGE: installs a Debian package when its command is missing.
ensure_package() {
  command -v "$1" >/dev/null 2>&1 && return 0
  log "installing $2"
  local sudo=""
  if [[ "$(id -u)" -ne 0 ]]; then sudo="sudo"; fi
  $sudo apt-get install -y "$2" >"$TMP/apt-$2.log" 2>&1 || {
    $sudo apt-get update >>"$TMP/apt-$2.log" 2>&1
    $sudo apt-get install -y "$2" >>"$TMP/apt-$2.log" 2>&1 || { cat "$TMP/apt-$2.log" >&2; die "could not install $2"; }
  }
}

for tool in curl python3 cargo; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done
ensure_wrk
if [[ "${NGINX:-1}" != 0 ]]; then
  ensure_package nginx nginx
  PATH="$PATH:/usr/sbin"
fi

if [[ -n "${AUTH_OVERHEAD:-}" ]]; then
  # A second binary without the auth and rate-limit layers, to measure what they cost.
  log "building marketd without auth (release, -j$CARGO_JOBS), for the overhead comparison"
  cargo build --release -j"$CARGO_JOBS" -p marketd --features insecure-no-auth-for-benchmarks
  cp "$BIN" "$ROOT/target/release/marketd-noauth"
fi
log "building marketd (release, -j$CARGO_JOBS)"
cargo build --release -j"$CARGO_JOBS" -p marketd
[[ -x "$BIN" ]] || die "$BIN not found after build"

mkdir -p "$RESULTS_DIR" "$RAW_DIR"
rm -f "$RAW_DIR"/*

# ---------------------------------------------------------------------------- helpers

now_ns() { date +%s%N; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# start_server NAME PORT URL [extra args...]; sets SERVER_PID and STARTUP_MS.
start_server() {
  local name="$1" port="$2" url="$3"; shift 3
  local logf="$RAW_DIR/server-$name.log"
  local t0 t1
  t0="$(now_ns)"
  "$BIN" serve --listen "127.0.0.1:$port" --database-url "$url" "$@" >"$logf" 2>&1 &
  SERVER_PID=$!
  local deadline=$(( $(date +%s) + STARTUP_TIMEOUT_S ))
  while :; do
    if curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$port/healthz" 2>/dev/null; then
      t1="$(now_ns)"
      break
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      tail -n 20 "$logf" >&2 || true
      die "$name: server exited before /healthz answered (log: $logf)"
    fi
    (( $(date +%s) < deadline )) || die "$name: no 200 on /healthz within ${STARTUP_TIMEOUT_S}s"
    sleep 0.01
  done
  STARTUP_MS=$(( (t1 - t0) / 1000000 ))
}

# stop_server NAME; sets STOP_MS and STOP_RC. Fails if the process outlives STOP_TIMEOUT_S.
stop_server() {
  local name="$1" t0 t1
  t0="$(now_ns)"
  kill -TERM "$SERVER_PID"
  local deadline=$(( $(date +%s) + STOP_TIMEOUT_S ))
  while kill -0 "$SERVER_PID" 2>/dev/null; do
    if (( $(date +%s) >= deadline )); then
      kill -KILL "$SERVER_PID" 2>/dev/null || true
      wait "$SERVER_PID" 2>/dev/null || true
      SERVER_PID=""
      die "$name: server still running ${STOP_TIMEOUT_S}s after SIGTERM"
    fi
    sleep 0.05
  done
  t1="$(now_ns)"
  STOP_RC=0
  wait "$SERVER_PID" || STOP_RC=$?
  SERVER_PID=""
  STOP_MS=$(( (t1 - t0) / 1000000 ))
}

peak_rss_mib() {
  awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"
}

# bench NAME URL [HEADER...]; prints "rps|p50|p99|non2xx|socket_errors" and keeps the raw
# output. Sends the key unless a header already carries one.
bench() {
  local name="$1" url="$2" out="$RAW_DIR/wrk-$1.txt"; shift 2
  local headers=()
  local h
  for h in "$@"; do headers+=(-H "$h"); done
  if [[ "$*" != *Authorization* ]]; then headers+=(-H "Authorization: Bearer $API_KEY"); fi
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" "${headers[@]}" "$url" >/dev/null
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "${headers[@]}" "$url" >"$out"
  local rps p50 p99 non2xx errs
  rps="$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")"
  p50="$(awk '$1 == "50%" { print $2 }' "$out")"
  p99="$(awk '$1 == "99%" { print $2 }' "$out")"
  non2xx="$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")"
  errs="$(awk '/Socket errors:/ { sub(/^ *Socket errors: */, ""); print }' "$out")"
  echo "${rps:-?}|${p50:-?}|${p99:-?}|${non2xx:-0}|${errs:-none}"
}

# The start of a full 500-candle hourly page: ~30 days ago, on the hour.
START_TS="$(date -u -d "@$(( ($(date +%s) - 30 * 86400) / 3600 * 3600 ))" +%Y-%m-%dT%H:%M:%SZ)"
PRICES_PATH="/v1/prices?symbols=BTC,ETH"
OHLCV_PATH="/v1/ohlcv/BTC?interval=1h&limit=500&start=$START_TS"
INDICATORS_PATH="/v1/indicators/BTC?interval=1h&limit=500&start=$START_TS&indicators=rsi:14,macd:12:26:9"
# Well-formed (the checksum holds) but unknown: refused after a lookup, as a guessed key is.
BAD_KEY="mkd_test_AAAAAAAAAAAA_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

check_ohlcv_page() {
  local port="$1" body="$TMP/ohlcv.json" code n
  code="$(curl -sS -H "Authorization: Bearer $API_KEY" -o "$body" -w '%{http_code}' "http://127.0.0.1:$port$OHLCV_PATH")"
  [[ "$code" == "200" ]] || { cat "$body" >&2; die "ohlcv check: HTTP $code"; }
  n="$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["data"]))' "$body")"
  [[ "$n" == "500" ]] || die "ohlcv check: expected 500 candles, got $n"
  OHLCV_BYTES="$(stat -c %s "$body")"
}

check_prices() {
  local port="$1" code
  code="$(curl -sS -H "Authorization: Bearer $API_KEY" -o "$TMP/prices.json" -w '%{http_code}' "http://127.0.0.1:$port$PRICES_PATH")"
  [[ "$code" == "200" ]] || { cat "$TMP/prices.json" >&2; die "prices check: HTTP $code"; }
  PRICES_BYTES="$(stat -c %s "$TMP/prices.json")"
  PRICES_ETAG="$(curl -sS -D - -o /dev/null -H "Authorization: Bearer $API_KEY" "http://127.0.0.1:$port$PRICES_PATH" \
    | awk 'tolower($1) == "etag:" { sub(/\r$/, "", $2); print $2 }')"
  [[ -n "$PRICES_ETAG" ]] || die "prices check: no ETag"
}

# nginx on PORT serving PRICES_FILE as the prices answer and PAGE_FILE as the ohlcv
# page, with the same content type.
start_nginx() {
  local port="$1" file="$2" page="$3" dir="$TMP/nginx"
  mkdir -p "$dir/logs"
  cat >"$dir/nginx.conf" <<CONF
worker_processes auto;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $dir; proxy_temp_path $dir; fastcgi_temp_path $dir;
  uwsgi_temp_path $dir; scgi_temp_path $dir;
  server {
    listen 127.0.0.1:$port;
    location = /v1/prices { default_type application/json; alias $file; }
    location = /v1/ohlcv/BTC { default_type application/json; alias $page; }
  }
}
CONF
  # nginx's workers run unprivileged: they must be able to read the file.
  chmod 755 "$TMP" "$dir"
  chmod 644 "$file" "$page"
  nginx -c "$dir/nginx.conf" -p "$dir" || die "nginx did not start"
  local code path expected
  for path in "$PRICES_PATH" "$OHLCV_PATH"; do
    expected="$file"; [[ "$path" == "$OHLCV_PATH" ]] && expected="$page"
    code="$(curl -sS -o "$dir/check.json" -w '%{http_code}' "http://127.0.0.1:$port$path")"
    [[ "$code" == 200 ]] && cmp -s "$dir/check.json" "$expected" || die "nginx check of $path: HTTP $code or different bytes"
  done
}

current_rss_mib() {
  awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"
}

# attach_rss NAME: the server's peak RSS so far, on this backend's rows that lack one.
attach_rss() {
  local name="$1" rss i
  rss="$(peak_rss_mib "$SERVER_PID")"
  for i in "${!ROWS[@]}"; do
    if [[ "${ROWS[$i]}" == "$name|"* && "${ROWS[$i]}" != *"|rss="* ]]; then
      ROWS[$i]="${ROWS[$i]}|rss=$rss"
    fi
  done
}

# run_streams NAME PORT URL: holds STREAMS price streams open for STREAM_SECONDS (five
# per key, marketd's cap, so STREAMS/5 keys), sampling the server's RSS while they are.
run_streams() {
  local name="$1" port="$2" url="$3" keys="$TMP/stream-keys-$1.txt" i
  : >"$keys"
  log "$name: creating $(( (STREAMS + 4) / 5 )) keys for $STREAMS streams"
  for (( i = 0; i < (STREAMS + 4) / 5; i++ )); do
    "$BIN" keys create --database-url "$url" --name "stream-$i" --scopes prices:read \
      2>/dev/null >>"$keys" || die "$name: could not create a stream key"
  done
  local before rss_max=0 rss out="$RAW_DIR/sse-$name.json"
  before="$(current_rss_mib "$SERVER_PID")"
  log "$name: holding $STREAMS streams for ${STREAM_SECONDS}s"
  python3 "$ROOT/tests/load/sse_streams.py" --port "$port" --keys-file "$keys" \
    --streams "$STREAMS" --seconds "$STREAM_SECONDS" >"$out" &
  local client=$!
  while kill -0 "$client" 2>/dev/null; do
    rss="$(current_rss_mib "$SERVER_PID")"
    rss_max="$(python3 -c "print(max($rss_max, $rss))")"
    sleep 0.5
  done
  wait "$client" || die "$name: the stream client failed"
  log "$name: streams -> $(cat "$out")"
  NOTES+=("$name: $STREAMS SSE streams for ${STREAM_SECONDS}s: $(cat "$out"); server RSS ${before} MiB before, at most ${rss_max} MiB while held")
}

# ---------------------------------------------------------------------------- backends

# Every /v1 route needs a key; Postgres needs a pepper to hash it.
export MARKETD_KEY_PEPPER="${MARKETD_KEY_PEPPER:-1:$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')}"
API_KEY=""

ROWS=()
NOTES=()

run_backend() {
  local name="$1" url="$2"; shift 2
  local port first second
  port="$(free_port)"

  log "$name: first start (fresh database, seeds demo data)"
  start_server "$name-first" "$port" "$url" "$@"
  first="$STARTUP_MS"
  stop_server "$name-first"
  log "$name: first start ${first} ms; stopped in ${STOP_MS} ms (exit $STOP_RC)"
  NOTES+=("$name first run: SIGTERM -> exit in ${STOP_MS} ms, exit code $STOP_RC")

  API_KEY="$("$BIN" keys create --database-url "$url" --name load --scopes prices:read,signals:read \
    --rate-limit 10000000 2>/dev/null)" || die "$name: could not create a key"
  log "$name: second start (existing database, response cache off)"
  MARKETD_RESPONSE_CACHE_MS=0 start_server "$name" "$port" "$url" "$@"
  second="$STARTUP_MS"
  log "$name: second start ${second} ms"
  sleep 2
  NOTES+=("$name: idle RSS 2 s after the second start: $(current_rss_mib "$SERVER_PID") MiB")

  check_prices "$port"
  check_ohlcv_page "$port"
  log "$name: /v1/prices body ${PRICES_BYTES} B; ohlcv page 500 candles, ${OHLCV_BYTES} B"

  local r
  for scenario in prices prices304 ohlcv500 indicators500 bad_key; do
    local path="$PRICES_PATH" headers=()
    case "$scenario" in
      prices304) headers=("If-None-Match: $PRICES_ETAG") ;;
      ohlcv500) path="$OHLCV_PATH" ;;
      indicators500) path="$INDICATORS_PATH" ;;
      bad_key) headers=("Authorization: Bearer $BAD_KEY") ;;
    esac
    log "$name: $scenario (warm-up $WARMUP, then $DURATION at $CONNECTIONS connections)"
    r="$(bench "$name-$scenario" "http://127.0.0.1:$port$path" "${headers[@]}")"
    ROWS+=("$name|$scenario|$first|$second|$r")
    attach_rss "$name"
    log "$name: $scenario -> $r"
  done

  stop_server "$name"
  log "$name: stopped in ${STOP_MS} ms (exit $STOP_RC)"
  NOTES+=("$name second run: SIGTERM -> exit in ${STOP_MS} ms, exit code $STOP_RC")

  # The response cache on: the cached scenarios, then many live streams.
  log "$name: third start, with MARKETD_RESPONSE_CACHE_MS=$CACHE_MS"
  MARKETD_RESPONSE_CACHE_MS="$CACHE_MS" start_server "$name-cached" "$port" "$url" "$@"
  for scenario in prices_cached ohlcv500_cached; do
    local path="$PRICES_PATH"
    [[ "$scenario" == ohlcv500_cached ]] && path="$OHLCV_PATH"
    log "$name: $scenario (warm-up $WARMUP, then $DURATION at $CONNECTIONS connections)"
    r="$(bench "$name-$scenario" "http://127.0.0.1:$port$path")"
    ROWS+=("$name|$scenario|$first|$STARTUP_MS|$r")
    attach_rss "$name"
    log "$name: $scenario -> $r"
  done
  run_streams "$name" "$port" "$url"
  stop_server "$name-cached"
  NOTES+=("$name third run: SIGTERM -> exit in ${STOP_MS} ms, exit code $STOP_RC")

  local logs=("$RAW_DIR/server-$name-first.log" "$RAW_DIR/server-$name.log") errors warns
  errors="$(cat "${logs[@]}" | grep -ci '"level":"error"' || true)"
  warns="$(cat "${logs[@]}" | grep -ci '"level":"warn"' || true)"
  NOTES+=("$name server logs: $errors ERROR, $warns WARN lines (tests/load/results/raw/server-$name*.log)")
}

if [[ -n "${AUTH_OVERHEAD:-}" ]]; then BACKENDS="$BACKENDS sqlite-noauth"; fi
for backend in $BACKENDS; do
  case "$backend" in
    sqlite)
      run_backend sqlite "sqlite://$TMP/load.db"
      ;;
    sqlite-noauth)
      with_auth_bin="$BIN"
      BIN="$ROOT/target/release/marketd-noauth"
      run_backend sqlite-noauth "sqlite://$TMP/load-noauth.db"
      BIN="$with_auth_bin"
      ;;
    postgres)
      command -v psql >/dev/null 2>&1 || die "psql is required for the Postgres backend"
      psql_admin=(psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_USER" -d postgres -v ON_ERROR_STOP=1 -qAt)
      "${psql_admin[@]}" -c 'SELECT 1' >/dev/null || die "cannot reach Postgres at $PG_HOST:$PG_PORT as $PG_USER"
      log "postgres: recreating database $PG_DB"
      "${psql_admin[@]}" -c "DROP DATABASE IF EXISTS \"$PG_DB\" WITH (FORCE)"
      "${psql_admin[@]}" -c "CREATE DATABASE \"$PG_DB\""
      run_backend postgres "postgres://$PG_USER@$PG_HOST:$PG_PORT/$PG_DB" --demo
      ;;
    *) die "unknown backend $backend" ;;
  esac
done

if [[ "${NGINX:-1}" != 0 && -f "$TMP/prices.json" && -f "$TMP/ohlcv.json" ]]; then
  nginx_port="$(free_port)"
  start_nginx "$nginx_port" "$TMP/prices.json" "$TMP/ohlcv.json"
  log "nginx: the same prices bytes (warm-up $WARMUP, then $DURATION at $CONNECTIONS connections)"
  r="$(bench nginx-prices "http://127.0.0.1:$nginx_port$PRICES_PATH")"
  ROWS+=("nginx|prices (same bytes, static file)|-|-|$r|rss=-")
  NGINX_RPS="${r%%|*}"
  log "nginx: the same ohlcv page bytes"
  r="$(bench nginx-ohlcv500 "http://127.0.0.1:$nginx_port$OHLCV_PATH")"
  ROWS+=("nginx|ohlcv500 (same bytes, static file)|-|-|$r|rss=-")
  NGINX_PAGE_RPS="${r%%|*}"
  nginx -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" -s quit || true
fi

# ---------------------------------------------------------------------------- report

{
  echo "# marketd load benchmark"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "- commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- crates 2>/dev/null || echo ' (+ uncommitted changes)')"
  echo "- machine: $(nproc) cores, $(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr)"
  echo "- load: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency after a $WARMUP warm-up, over 127.0.0.1, client on the same machine"
  echo "- prices: GET $PRICES_PATH, response cache off (MARKETD_RESPONSE_CACHE_MS=0), so every answer is computed; prices304: the same with If-None-Match of its ETag (304s)"
  echo "- indicators500: GET $INDICATORS_PATH"
  echo "- bad_key: GET $PRICES_PATH with a well-formed unknown key (401, then 429 once the per-address failure limit is reached)"
  echo "- nginx: the prices answer's and the ohlcv page's bytes as static files from nginx $(nginx -v 2>&1 | sed 's/.*nginx\///') on the same machine, the ceiling for an HTTP GET of those bytes here; ÷ nginx divides each prices and ohlcv500 scenario by nginx serving its own bytes"
  echo "- ohlcv500: GET $OHLCV_PATH (checked: 500 candles)"
  echo "- startup: process start to first 200 on /healthz (curl every 10 ms); first = fresh database incl. demo seeding, second = existing database"
  echo "- *_cached: the same requests to a server started with MARKETD_RESPONSE_CACHE_MS=$CACHE_MS (kept answers, dropped when data changes)"
  echo "- peak RSS: VmHWM of the server process when the scenario ended, so the peak of that scenario and of those above it on the same start (the second start runs prices first; the third start is its own process)"
  echo
  echo "| backend | scenario | startup first (ms) | startup second (ms) | req/s | ÷ nginx | p50 | p99 | non-2xx | socket errors | peak RSS (MiB) |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|"
  for row in "${ROWS[@]}"; do
    IFS='|' read -r b s f sec rps p50 p99 non2xx errs rss <<<"$row"
    ratio="-"
    case "$s" in
      prices*) ceiling="${NGINX_RPS:-}" ;;
      ohlcv500*) ceiling="${NGINX_PAGE_RPS:-}" ;;
      *) ceiling="" ;;
    esac
    if [[ "$ceiling" =~ ^[0-9]+$ && "$rps" =~ ^[0-9]+$ && "$b" != nginx ]]; then
      ratio="$(python3 -c "print(f'{$rps / $ceiling:.2f}')")"
    fi
    echo "| $b | $s | $f | $sec | $rps | $ratio | $p50 | $p99 | $non2xx | $errs | ${rss#rss=} |"
  done
  echo
  echo "Notes:"
  for n in "${NOTES[@]}"; do echo "- $n"; done
  echo
  echo "Raw wrk output and server logs: tests/load/results/raw/"
} >"$RESULTS_DIR/latest.md"

echo
cat "$RESULTS_DIR/latest.md"
