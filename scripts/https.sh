#!/usr/bin/env bash
# scripts/https.sh: HTTPS as the README's "Serving HTTPS" sets it up,
# against a real ACME CA: Let's Encrypt's test CA, Pebble (installed here
# with go install, pinned), on loopback. CI runs it.
#
# 1. Pebble takes every challenge as valid (PEBBLE_VA_ALWAYS_VALID=1), and
#    jwtnotes runs with -domain notes.test: the README's walk-through runs
#    over HTTPS (curl --resolve notes.test:PORT:127.0.0.1 --cacert
#    <Pebble's root>, through ~/.curlrc), then the checks: HTTP/2 in use,
#    HSTS and a Secure __Host- cookie, plain HTTP redirected (and a plain
#    write refused), a name not ours refused with no request to the CA
#    (Pebble's log), a restart that asks the CA for nothing.
# 2. A real validation: Pebble asks its DNS (pebble-challtestsrv, which
#    answers 127.0.0.1 for every name) where notes.test is, and fetches
#    the HTTP-01 challenge from jwtnotes' plain-HTTP port. (Pebble tries
#    TLS-ALPN-01 on a port where nothing listens first: autocert prefers
#    it, and falls back to HTTP-01 when it fails.)
#
# Needs Go and curl. Ports: 14000-14001 (Pebble), 15000-15001 (its
# management API), 18053 (DNS), 18443 and 18080 (jwtnotes).
set -euo pipefail
cd "$(dirname "$0")/.."
PEBBLE=github.com/letsencrypt/pebble/v2@v2.10.3
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"; rm -rf server.log served.png backup-*
}
trap cleanup EXIT

echo "-- installing pebble and pebble-challtestsrv ($PEBBLE)"
GOBIN="$work/bin" go install "github.com/letsencrypt/pebble/v2/cmd/pebble@${PEBBLE#*@}" \
    "github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@${PEBBLE#*@}"
# Pebble's own listener uses the test certificate its module ships (valid
# to 2027-10-03), signed by its test CA: what -acme-ca-file trusts.
pebble_src=$(go mod download -json "$PEBBLE" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
go build -o "$work/jwtnotes" .

# start_pebble ALWAYS_VALID PORT MGMT HTTPPORT TLSPORT [flags]: start
# Pebble, wait for it, and write its root (of what it issues) to
# $work/root-PORT.pem.
start_pebble() {
    local always_valid=$1 port=$2 mgmt=$3 http_port=$4 tls_port=$5
    shift 5
    cat >"$work/pebble-$port.json" <<EOF
{"pebble": {"listenAddress": "127.0.0.1:$port", "managementListenAddress": "127.0.0.1:$mgmt",
 "certificate": "$pebble_src/test/certs/localhost/cert.pem", "privateKey": "$pebble_src/test/certs/localhost/key.pem",
 "httpPort": $http_port, "tlsPort": $tls_port, "ocspResponderURL": "", "externalAccountBindingRequired": false}}
EOF
    env PEBBLE_VA_ALWAYS_VALID="$always_valid" PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 "$work/bin/pebble" -config "$work/pebble-$port.json" "$@" \
        >"$work/pebble-$port.log" 2>&1 &
    pids+=($!)
    curl -sS --retry 50 --retry-connrefused --retry-delay 0 --retry-max-time 20 2>/dev/null \
        --cacert "$pebble_src/test/certs/pebble.minica.pem" "https://127.0.0.1:$mgmt/roots/0" >"$work/root-$port.pem"
}

# start_jwtnotes DATA LOG DIRECTORY [flags]: start jwtnotes with HTTPS on 18443 and 18080
# for notes.test, and wait until it has its certificate.
start_jwtnotes() {
    local data=$1 log=$2 dir=$3
    shift 3
    "$work/jwtnotes" -data "$data" -domain notes.test -acme-directory "$dir" \
        -acme-ca-file "$pebble_src/test/certs/pebble.minica.pem" -https-addr 127.0.0.1:18443 -http-addr 127.0.0.1:18080 \
        "$@" >"$log" 2>&1 &
    server=$!
    pids+=($server)
    for _ in $(seq 100); do
        grep -q 'HTTPS certificate ready' "$log" && return
        grep -q 'no HTTPS certificate yet' "$log" && break
        kill -0 "$server" 2>/dev/null || break
        sleep 0.2
    done
    echo "jwtnotes has no certificate:"; cat "$log"; exit 1
}

fail() { echo "FAIL: $*"; exit 1; }

echo "== 1. Pebble taking every challenge as valid; the walk-through over HTTPS"
start_pebble 1 14000 15000 5002 5001
export DATA_DIR="$work/data" # the walk-through's go run . keys ... find this server's keys
# server.log in the repository's folder: the walk-through reads its mail there.
start_jwtnotes "$DATA_DIR" server.log https://127.0.0.1:14000/dir -acme-email admin@notes.test
base=https://notes.test:18443
# Every curl of the walk-through (and of the checks) reaches notes.test on
# loopback and trusts Pebble's root, as a reader's curl trusts a real CA.
export CURL_HOME="$work"
printf 'resolve = notes.test:18443:127.0.0.1\ncacert = "%s"\n' "$work/root-14000.pem" >"$work/.curlrc"
awk '/^```sh walkthrough$/ { on = 1; next } /^```$/ { on = 0 } on' README.md |
    sed "s|http://127.0.0.1:8000|$base|g" >"$work/walkthrough.sh"
grep -q "$base/api" "$work/walkthrough.sh" || fail "the walk-through names no http://127.0.0.1:8000 to replace"
echo "running $(grep -c '^```sh walkthrough$' README.md) blocks over HTTPS (the verifier's block runs in .ci/walkthrough.sh)"
timeout 300 bash -euo pipefail "$work/walkthrough.sh" >"$work/walkthrough.out"
grep -q "$base/#reset/" server.log || fail "the reset mail's link is not on $base"

echo "-- HTTP/2, HSTS, the Secure cookie"
headers=$(curl -sS --fail-with-body -D - -o /dev/null "$base/api/token/cookie/" -H 'Content-Type: application/json' \
    -d '{"username":"alice","password":"Correct-Horse-42"}')
echo "$headers" | grep -q '^HTTP/2 200' || fail "not HTTP/2: $headers"
echo "$headers" | grep -qi '^strict-transport-security: max-age=31536000' || fail "no HSTS: $headers"
echo "$headers" | grep -qi '^set-cookie: __Host-jwtnotes_refresh=.*; Secure' || fail "no Secure __Host- cookie: $headers"

echo "-- plain HTTP: a GET redirected, a write refused"
redirect=$(curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' http://127.0.0.1:18080/api/notes/ -H 'Host: notes.test')
[ "$redirect" = "301 $base/api/notes/" ] || fail "plain GET: $redirect"
refused=$(curl -sS -w ' %{http_code}' http://127.0.0.1:18080/api/token/ -H 'Host: notes.test' -d '{}')
[ "$refused" = "{\"detail\":\"Use HTTPS: $base/api/token/\"} 400" ] || fail "plain POST: $refused"

echo "-- a name not ours: refused, and the CA never asked"
if curl -sS -o /dev/null --resolve other.test:18443:127.0.0.1 https://other.test:18443/healthz 2>/dev/null; then
    fail "a handshake for other.test succeeded"
fi
! grep -q other.test "$work/pebble-14000.log" || fail "Pebble was asked about other.test"

echo "-- a restart asks the CA for nothing"
issued=$(grep -c 'Issued certificate' "$work/pebble-14000.log")
[ "$issued" = 1 ] || fail "Pebble issued $issued certificates, want 1"
kill "$server" && wait "$server" 2>/dev/null || true
start_jwtnotes "$DATA_DIR" "$work/restart.log" https://127.0.0.1:14000/dir
curl -sS --fail-with-body -o /dev/null "$base/healthz"
[ "$(grep -c 'Issued certificate' "$work/pebble-14000.log")" = 1 ] || fail "the restart was issued a new certificate"
kill "$server" && wait "$server" 2>/dev/null || true

echo "== 2. a real HTTP-01 validation of jwtnotes' plain-HTTP port"
"$work/bin/pebble-challtestsrv" -defaultIPv4 127.0.0.1 -defaultIPv6 "" -dnsserver 127.0.0.1:18053 \
    -http01 "" -https01 "" -tlsalpn01 "" -doh "" -management 127.0.0.1:18055 >"$work/challtestsrv.log" 2>&1 &
pids+=($!)
# httpPort: jwtnotes' plain-HTTP port; tlsPort: one where nothing listens.
start_pebble 0 14001 15001 18080 18999 -dnsserver 127.0.0.1:18053
start_jwtnotes "$work/data-validated" "$work/validated.log" https://127.0.0.1:14001/dir
grep -q 'validate w/ HTTP: http://notes.test:18080/.well-known/acme-challenge/' "$work/pebble-14001.log" &&
    grep -q 'set VALID by completed challenge' "$work/pebble-14001.log" || fail "no HTTP-01 validation in Pebble's log"
printf 'resolve = notes.test:18443:127.0.0.1\ncacert = "%s"\n' "$work/root-14001.pem" >"$work/.curlrc"
curl -sS --fail-with-body -o /dev/null "$base/healthz"
echo "https: ok"
