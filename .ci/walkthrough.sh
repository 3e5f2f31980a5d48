#!/usr/bin/env bash
# .ci/walkthrough.sh: run the README's walk-through, as a reader would paste
# it, against a fresh server on 127.0.0.1:8000 (the address it names).
# Every block fenced as "sh walkthrough" in README.md runs, in order, in one
# shell with -e: a step that does not succeed fails CI.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/jwtnotes" .
"$work/jwtnotes" -data "$work/data" >"$work/server.log" 2>&1 &
server=$!
curl -sS --retry 60 --retry-connrefused --retry-delay 0 --retry-max-time 30 -o /dev/null http://127.0.0.1:8000/healthz
awk '/^```sh walkthrough$/ { on = 1; next } /^```$/ { on = 0 } on' README.md >"$work/walkthrough.sh"
blocks=$(grep -c '^```sh walkthrough$' README.md)
echo "running $blocks blocks, $(wc -l <"$work/walkthrough.sh") lines"
bash -euo pipefail "$work/walkthrough.sh"
if grep -q 'level=ERROR' "$work/server.log"; then
    echo "the server logged an error:"; cat "$work/server.log"; exit 1
fi
echo "walkthrough: ok"
