#!/usr/bin/env bash
# .ci/prism.sh: prism (@stoplight/prism-cli, pinned in e2e/package.json) as
# a validating proxy: every request and every answer that passes through
# it is checked against openapi.json. In front of it, .ci/split-proxy.mjs
# sends the requests with binary bodies (uploads, media) around it, since
# prism corrupts them.
#
#   .ci/prism.sh start WORK PORT UPSTREAM   listen on 127.0.0.1:PORT (prism on PORT+10), logs in WORK
#   .ci/prism.sh check WORK                 fail if it saw anything the document does not describe
#   .ci/prism.sh stop WORK
#
# --errors turns a body or header that breaks the document into a 500 (the
# client sees it fail); a status the document does not list is only a
# warning in prism's log, which check turns into a failure too. --cors=false
# passes the preflights through to the server, whose answers are checked
# like the rest. One thing prism answers itself: a request without the
# bearer token an operation requires gets prism's 401, not the server's
# (check counts those apart; the server's own 401s are held to the
# document by openapi_test.go).
set -euo pipefail
cd "$(dirname "$0")/.."
prism=e2e/node_modules/.bin/prism
case "$1" in
start)
    work=$2 port=$3 upstream=$4
    [ -x "$prism" ] || { echo "prism is not installed: run npm ci in e2e/"; exit 1; }
    "$prism" proxy --errors --cors=false -h 127.0.0.1 -p $((port + 10)) openapi.json "$upstream" >"$work/prism.log" 2>&1 &
    echo $! >"$work/prism.pid"
    node .ci/split-proxy.mjs "$port" "http://127.0.0.1:$((port + 10))" "$upstream" >"$work/split.log" 2>&1 &
    echo $! >>"$work/prism.pid"
    for _ in $(seq 300); do # until both say they listen (at most a minute)
        grep -q 'Prism is listening' "$work/prism.log" && grep -q 'listening' "$work/split.log" && exit 0
        sleep 0.2
    done
    echo "prism did not start:"; cat "$work/prism.log" "$work/split.log"; exit 1
    ;;
check)
    # Prism marks a refused request or answer with ✖ and a validation
    # finding with "Violation" (at start it lists the routes with made-up
    # parameters, "error" among its words, so that word alone says nothing).
    if grep -E 'Violation|✖' "$2/prism.log" | grep -v 'errors#UNAUTHORIZED'; then
        echo "prism: traffic that openapi.json does not describe (above)"; exit 1
    fi
    echo "prism: $(grep -c 'Request received' "$2/prism.log" || true) requests, every one as openapi.json describes" \
        "($(grep -c 'errors#UNAUTHORIZED' "$2/prism.log" || true) without a token answered by prism);" \
        "$(grep -c '^direct' "$2/split.log" || true) with binary bodies went around it"
    ;;
stop)
    [ -f "$2/prism.pid" ] && kill $(cat "$2/prism.pid") 2>/dev/null || true
    ;;
esac
