#!/usr/bin/env bash
# scripts/litestream.sh: continuous replication with Litestream, checked
# the hard way.
#
# Installs Litestream (go install, pinned; it takes minutes to build the
# first time), starts jwtnotes with -litestream beside `litestream
# replicate` to a file replica, writes notes from several clients at once,
# kills the server with SIGKILL in the middle of the load, lets Litestream
# finish, restores the replica into a new data folder, starts jwtnotes on
# it and checks that every note whose creation was acknowledged (201) is
# there. Prints its figures; exits 1 if anything acknowledged is missing.
#
#   bash scripts/litestream.sh                 # 20 s of load, 4 clients
#   DURATION=60 CLIENTS=8 bash scripts/litestream.sh
#
# Needs Go, curl and a free port 127.0.0.1:8090 (PORT=...). LITESTREAM=path
# uses a binary already built.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DURATION:=20}" "${CLIENTS:=4}" "${PORT:=8090}"
version=v0.5.18
litestream=${LITESTREAM:-${XDG_CACHE_HOME:-$HOME/.cache}/jwtnotes/litestream-$version/litestream}
if [ ! -x "$litestream" ]; then
    echo "== installing Litestream $version (go install; minutes the first time)"
    started=$(date +%s)
    GOBIN=$(dirname "$litestream") go install "github.com/benbjohnson/litestream/cmd/litestream@$version"
    echo "built in $(( $(date +%s) - started )) s"
fi
"$litestream" version

work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/jwtnotes" .
data=$work/data replica=$work/replica restored=$work/restored
base=http://127.0.0.1:$PORT
export JWT_SECRET= # the keys file, as a real deployment without the variable

# waitfor URL: until it answers (at most 30 s).
waitfor() {
    curl -s --retry 60 --retry-connrefused --retry-delay 0 --retry-max-time 30 -o /dev/null "$1" ||
        { echo "no answer from $1"; cat "$work"/*.log; exit 1; }
}
ms() { date +%s%3N; }

"$work/jwtnotes" -data "$data" -addr "127.0.0.1:$PORT" -litestream -write-limit 0 -ip-limit 0 >"$work/server.log" 2>&1 &
server=$!
pids+=("$server")
waitfor "$base/healthz"
"$litestream" replicate "$data/notes.db" "file://$replica" >"$work/litestream.log" 2>&1 &
litestream_pid=$!
pids+=("$litestream_pid")

curl -sS --fail-with-body "$base/api/register/" -H 'Content-Type: application/json' \
    -d '{"username":"alice","email":"alice@example.com","password":"Correct-Horse-42","password2":"Correct-Horse-42"}' >/dev/null
login() {
    curl -sS --fail-with-body "$1/api/token/" -H 'Content-Type: application/json' \
        -d '{"username":"alice","password":"Correct-Horse-42"}' | sed 's/.*"access":"\([^"]*\)".*/\1/'
}
access=$(login "$base")

# Each client creates notes one after another and writes down the id of
# every creation the server acknowledged.
echo "== $CLIENTS clients writing notes for $DURATION s; SIGKILL to the server in the middle of it"
for c in $(seq "$CLIENTS"); do
    (
        i=0
        while :; do
            i=$((i + 1))
            out=$(curl -sS -m 5 -w '\n%{http_code}' "$base/api/notes/" -H "Authorization: Bearer $access" \
                -H 'Content-Type: application/json' -d "{\"title\":\"client $c note $i\",\"body\":\"replicated\"}" 2>/dev/null) || continue
            [ "${out##*$'\n'}" = 201 ] && echo "$out" | head -n 1 | sed 's/^{"id":\([0-9]*\),.*/\1/' >>"$work/acked.$c"
        done
    ) &
    pids+=("$!")
done
sleep "$DURATION" # the load's length, not a synchronisation
kill -KILL "$server"
wait "$server" 2>/dev/null || true
killed_at=$(ms)
kill "${pids[@]:2}" 2>/dev/null || true # the clients
cat "$work"/acked.* | sort -n >"$work/acked"
acked=$(wc -l <"$work/acked")
echo "acknowledged: $acked notes in $DURATION s ($((acked / DURATION)) a second)"

# Litestream still runs: it ships what the killed server left in the WAL.
# SIGTERM makes it sync one last time and exit.
kill -TERM "$litestream_pid"
wait "$litestream_pid" 2>/dev/null || true
echo "litestream stopped $(($(ms) - killed_at)) ms after the kill; replica $(du -sh "$replica" | cut -f1)"
if grep -qi 'level=error' "$work/litestream.log"; then
    echo "litestream logged errors:"; grep -i 'level=error' "$work/litestream.log"; exit 1
fi

echo "== restore the replica into a new data folder"
started=$(ms)
mkdir -p "$restored"
"$litestream" restore -o "$restored/notes.db" "file://$replica"
echo "restored in $(($(ms) - started)) ms"
# The keys live outside the database (and media files beside it): a
# deployment backs them up on their own (jwtnotes backup -with-keys).
cp -p "$data/jwt.keys" "$restored/"

"$work/jwtnotes" -data "$restored" -addr "127.0.0.1:$PORT" >"$work/restored.log" 2>&1 &
pids+=("$!")
waitfor "$base/healthz"
access=$(login "$base")
: >"$work/present"
offset=0
while :; do
    page=$(curl -sS --fail-with-body "$base/api/notes/?mine=1&limit=100&offset=$offset" -H "Authorization: Bearer $access")
    ids=$(echo "$page" | grep -o '"id":[0-9]*' | cut -d: -f2 || true)
    [ -z "$ids" ] && break
    echo "$ids" >>"$work/present"
    offset=$((offset + 100))
done
sort -n "$work/present" -o "$work/present"
present=$(wc -l <"$work/present")
missing=$(comm -23 "$work/acked" "$work/present" | wc -l)
echo "restored server: $present notes; acknowledged but missing: $missing"
if [ "$missing" -ne 0 ]; then
    comm -23 "$work/acked" "$work/present" | head
    exit 1
fi
echo "litestream: ok"
