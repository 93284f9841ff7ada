#!/usr/bin/env bash
# Trade through signing-proxy with nothing but curl: no key, no signature, no crypto.
#
#   examples/curl.sh [PROXY_URL]        (default http://127.0.0.1:8080)
#
# Asks for the balance, finds an open market, places a 1-cent bid for 1 contract on it
# (far below the market, so it rests) and cancels it at once. PROXY_TOKEN, when set, is
# sent as "Authorization: Bearer ..." (through stdin, so it never shows in `ps`).
# Exits non-zero at the first answer that is not 2xx. Try it with `signing-proxy sandbox`;
# against production this places a real order (and cancels it).
set -euo pipefail

PROXY=${1:-http://127.0.0.1:8080}
API=${PROXY%/}/trade-api/v2

# request METHOD PATH [JSON]: sets $body and $status, prints both.
request() {
  local method=$1 path=$2 data=${3:-} out
  local args=(-sS --max-time 30 -X "$method" -w '\n%{http_code}' -H @-)
  if [ -n "$data" ]; then
    args+=(-H 'Content-Type: application/json' --data-binary "$data")
  fi
  out=$(printf '%s\n' "${PROXY_TOKEN:+Authorization: Bearer $PROXY_TOKEN}" \
    | curl "${args[@]}" "$API$path")
  body=${out%$'\n'*}
  status=${out##*$'\n'}
  echo "$method /trade-api/v2$path -> $status"
  echo "$body"
  case $status in
    2??) ;;
    *) echo "curl.sh: $method $path answered $status" >&2; exit 1 ;;
  esac
}

# field NAME: the first "NAME": "value" in $body (jq does this better, when you have it).
field() {
  sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p" <<<"${body//,/$'\n'}" | head -n 1
}

request GET /portfolio/balance

request GET '/markets?status=open&limit=1'
ticker=$(field ticker)
[ -n "$ticker" ] || { echo "curl.sh: no open market" >&2; exit 1; }

client_order_id=$(cat /proc/sys/kernel/random/uuid 2>/dev/null || uuidgen)
request POST /portfolio/events/orders "{\"ticker\": \"$ticker\", \"side\": \"bid\",
  \"count\": \"1.00\", \"price\": \"0.0100\", \"client_order_id\": \"$client_order_id\",
  \"time_in_force\": \"good_till_canceled\", \"self_trade_prevention_type\": \"taker_at_cross\"}"
order_id=$(field order_id)
[ -n "$order_id" ] || { echo "curl.sh: no order_id in the answer" >&2; exit 1; }

request DELETE "/portfolio/events/orders/$order_id"
