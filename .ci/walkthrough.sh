#!/usr/bin/env bash
# .ci/walkthrough.sh: run the README's walk-through, as a reader would paste
# it, against a fresh server on 127.0.0.1:8000 (the address it names).
# Every block fenced as "sh walkthrough" (or "sh walkthrough-verifier") in
# README.md runs, in order, in one
# shell with -e: a step that does not succeed fails CI.
#
# 127.0.0.1:8000 is prism (pinned in e2e/package.json: run `npm ci` there
# first) validating every request and answer against openapi.json, in front
# of the server on 127.0.0.1:8001: an answer the document does not describe
# fails the run (.ci/prism.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; .ci/prism.sh stop "$work"; wait 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/jwtnotes" .
# DATA_DIR: the README's `go run . keys ...` find this server's keys.
export DATA_DIR="$work/data"
# server.log in the repository's folder: the README has the reader keep the
# log there (go run . 2>&1 | tee server.log) to take a mailed link from it.
# The walk-through writes served.png and backup-* there too, and builds
# examples/verifier/verifier.
trap 'kill "$server" 2>/dev/null || true; .ci/prism.sh stop "$work"; wait 2>/dev/null || true; rm -rf "$work" server.log served.png backup-* examples/verifier/verifier' EXIT
"$work/jwtnotes" -data "$work/data" -addr 127.0.0.1:8001 -public-url http://127.0.0.1:8000 >server.log 2>&1 &
server=$!
curl -sS --retry 60 --retry-connrefused --retry-delay 0 --retry-max-time 30 -o /dev/null http://127.0.0.1:8001/healthz
.ci/prism.sh start "$work" 8000 http://127.0.0.1:8001
awk '/^```sh walkthrough(-verifier)?$/ { on = 1; next } /^```$/ { on = 0 } on' README.md >"$work/walkthrough.sh"
blocks=$(grep -cE '^```sh walkthrough(-verifier)?$' README.md)
echo "running $blocks blocks, $(wc -l <"$work/walkthrough.sh") lines"
timeout 300 bash -euo pipefail "$work/walkthrough.sh"
# The typed client: the blocks fenced "sh typescript", "ts typescript" (saved
# as example.ts) and "sh typescript-run", as written, in a new folder (npm
# installs from the registry the versions the README pins).
client=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; .ci/prism.sh stop "$work"; wait 2>/dev/null || true; rm -rf "$work" "$client" server.log served.png backup-* examples/verifier/verifier' EXIT
awk '/^```sh typescript$/ { on = 1; next } /^```$/ { on = 0 } on' README.md >"$client/setup.sh"
awk '/^```ts typescript$/ { on = 1; next } /^```$/ { on = 0 } on' README.md >"$client/example.ts"
awk '/^```sh typescript-run$/ { on = 1; next } /^```$/ { on = 0 } on' README.md >"$client/run.sh"
(cd "$client" && bash -euo pipefail setup.sh && mv example.ts jwtnotes-client/ && cd jwtnotes-client &&
    bash -euo pipefail ../run.sh) | tee "$work/client.out"
grep -q "'Beach', 'Holiday'" "$work/client.out"
if grep -q 'level=ERROR' server.log; then
    echo "the server logged an error:"; cat server.log; exit 1
fi
.ci/prism.sh check "$work"
echo "walkthrough: ok"
