#!/usr/bin/env bash
# scripts/litefs.sh: read replicas on LiteFS, checked the hard way (CI runs
# it; docs/SCALING.md has the layout and the figures).
#
# Two nodes on this machine, as two machines would run them: node A is the
# primary (LiteFS static lease), node B a replica. Each runs `litefs
# mount` (its own FUSE mount, holding notes.db only) and a jwtnotes on it:
#
#   A: -db $work/a/mnt/notes.db -data $work/shared -forwarders 127.0.0.1
#   B: -db $work/b/mnt/notes.db -data $work/shared -primary-url http://127.0.0.1:18101
#
# $work/shared stands for storage both nodes mount (NFS, a cloud file
# share): the signing keys, the TOTP key and the media. Then:
#
# 0. B starts first: it waits for A's database, and says so;
# 1. clients for DURATION s against both: notes created through each node
#    (each read back at once from the node that took it: read your
#    writes), lists, refreshes, logins, an image; a key rotation on the
#    way; the replica (jwtnotes and LiteFS) killed with SIGKILL half-way
#    and started again;
# 2. every note whose creation was acknowledged is read on both nodes,
#    and the two nodes' lists are the same;
# 3. a session logged out on the primary is refused by the replica within
#    1 s (the figure is the measured delay), and a token of a key revoked
#    (jwtnotes keys revoke, on the shared folder) as soon as the command
#    returns;
# 4. failover by hand: A stops, B becomes the primary (its LiteFS
#    restarted as the candidate), and takes writes with every note there.
#
# It prints its figures and exits 1 on any loss or mismatch. Needs Go,
# curl, fuse3 (installed if missing, with apt) and root (FUSE mounts).
#   DURATION=30 bash scripts/litefs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DURATION:=10}"
version=v0.5.14
litefs=${LITEFS:-${XDG_CACHE_HOME:-$HOME/.cache}/jwtnotes/litefs-$version/litefs}
if ! command -v fusermount3 >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fuse3=3.14.0-4 >/dev/null
fi
if [ ! -x "$litefs" ]; then
    echo "== installing LiteFS $version (go install)"
    GOBIN=$(dirname "$litefs") go install "github.com/superfly/litefs/cmd/litefs@$version"
fi

work=$(mktemp -d)
pids=()
cleanup() {
    kill "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    for m in "$work"/*/mnt; do fusermount3 -uz "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
    [ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work" 2>/dev/null || { sleep 1; rm -rf "$work"; }
}
trap cleanup EXIT
go build -o "$work/jwtnotes" .
export JWT_SECRET= # the keys file, on the shared folder
A=http://127.0.0.1:18101 B=http://127.0.0.1:18102
mkdir -p "$work/shared"
ms() { date +%s%3N; }
fail() { echo "FAIL: $*"; exit 1; }

# litefs_up NODE PORT CANDIDATE PRIMARY_PORT: mount NODE's LiteFS and wait
# until it has joined the cluster.
litefs_up() {
    local node=$1 port=$2 candidate=$3 primary_port=$4
    mkdir -p "$work/$node/mnt" "$work/$node/data"
    cat >"$work/$node/litefs.yml" <<EOF
fuse: {dir: "$work/$node/mnt"}
data: {dir: "$work/$node/data"}
http: {addr: "127.0.0.1:$port"}
lease: {type: "static", advertise-url: "http://127.0.0.1:$primary_port", hostname: "node-$primary_port", candidate: $candidate}
EOF
    "$litefs" mount -config "$work/$node/litefs.yml" >>"$work/$node/litefs.log" 2>&1 &
    eval "litefs_$node=$!"
    pids+=($!)
    for _ in $(seq 500); do
        # ready, and showing the database if it has one
        grep -q 'connected to cluster, ready' "$work/$node/litefs.log" &&
            { [ ! -e "$work/$node/data/dbs/notes.db" ] || [ -e "$work/$node/mnt/notes.db-pos" ]; } && return
        sleep 0.02
    done
    cat "$work/$node/litefs.log"; fail "LiteFS of $node did not start"
}

# jwtnotes_up NODE PORT FLAGS...: start NODE's jwtnotes and wait for it.
jwtnotes_up() {
    local node=$1 port=$2
    shift 2
    "$work/jwtnotes" -db "$work/$node/mnt/notes.db" -data "$work/shared" -addr "127.0.0.1:$port" \
        -ip-limit 0 -login-limit 0 -write-limit 0 "$@" >>"$work/$node/jwtnotes.log" 2>&1 &
    eval "jwtnotes_$node=$!"
    pids+=($!)
    curl -s --retry 100 --retry-connrefused --retry-delay 0 --retry-max-time 30 -o /dev/null "http://127.0.0.1:$port/healthz" ||
        { cat "$work/$node/jwtnotes.log"; fail "jwtnotes on $node did not start"; }
}

pos() { cut -d/ -f1 "$work/$1/mnt/notes.db-pos" 2>/dev/null || echo none; }
field() { sed "s/.*\"$1\":\"\\{0,1\\}\\([^\",}]*\\).*/\\1/"; }
login() {
    curl -sS --fail-with-body "$1/api/token/" -H 'Content-Type: application/json' \
        -d "{\"username\":\"$2\",\"password\":\"Correct-Horse-42\"}"
}
register() {
    curl -sS --fail-with-body "$1/api/register/" -H 'Content-Type: application/json' -o /dev/null \
        -d "{\"username\":\"$2\",\"email\":\"$2@example.com\",\"password\":\"Correct-Horse-42\",\"password2\":\"Correct-Horse-42\"}"
}

echo "== a primary (A) and a replica (B) on LiteFS $version; B started first waits for A's database"
litefs_up a 20202 true 20202
litefs_up b 20203 false 20202
"$work/jwtnotes" -db "$work/b/mnt/notes.db" -data "$work/shared" -addr 127.0.0.1:18102 -primary-url "$A" \
    >>"$work/b/jwtnotes.log" 2>&1 &
jwtnotes_b=$!
pids+=($!)
for _ in $(seq 100); do grep -q "waiting for the primary's database" "$work/b/jwtnotes.log" && break; sleep 0.05; done
grep -q "waiting for the primary's database" "$work/b/jwtnotes.log" || { cat "$work/b/jwtnotes.log"; fail "B does not say it waits"; }
jwtnotes_up a 18101 -forwarders 127.0.0.1
curl -s --retry 100 --retry-connrefused --retry-delay 0 --retry-max-time 30 -o /dev/null "$B/healthz" ||
    { cat "$work/b/jwtnotes.log"; fail "B did not start once A's database was there"; }
grep -q 'a LiteFS replica' "$work/b/jwtnotes.log" || fail "B does not know it is a replica"
register "$B" alice # through the replica: forwarded
register "$A" bob

# creator NAME NODE: create notes through NODE, each read back at once
# from NODE; acknowledged ids to acked-NAME, reads that missed to missed-NAME.
creator() {
    local name=$1 node=$2 access i=0
    access=$(login "$node" "$name" | field access)
    : >"$work/acked-$name" && : >"$work/missed-$name"
    while [ "$(ms)" -lt "$end" ]; do
        i=$((i + 1))
        local answer
        answer=$(curl -sS -m 5 -w ' %{http_code}' "$node/api/notes/" -H "Authorization: Bearer $access" \
            -H 'Content-Type: application/json' -d "{\"title\":\"$name $i\",\"body\":\"body $i\"}" 2>/dev/null) || continue
        [ "${answer##* }" = 201 ] || continue
        local id
        id=$(echo "$answer" | sed 's/^{"id":\([0-9]*\),.*/\1/')
        echo "$id" >>"$work/acked-$name"
        # an answer other than 200 is a miss; no answer (the node was killed) is not
        local read
        read=$(curl -sS -m 5 -o /dev/null -w '%{http_code}' "$node/api/notes/$id/" -H "Authorization: Bearer $access" 2>/dev/null) || true
        [ "$read" = 200 ] || [ "$read" = 000 ] || echo "$id $read" >>"$work/missed-$name"
    done
}
# refresher NODE: rotate refresh tokens through NODE, log in every 10th turn.
refresher() {
    local node=$1 tokens refresh i=0 ok=0 bad=0
    tokens=$(login "$node" alice)
    refresh=$(echo "$tokens" | field refresh)
    while [ "$(ms)" -lt "$end" ]; do
        i=$((i + 1))
        if [ $((i % 10)) = 0 ]; then tokens=$(login "$node" alice 2>/dev/null) || continue
        else tokens=$(curl -sS -m 5 --fail-with-body "$node/api/token/refresh/" -H 'Content-Type: application/json' \
            -d "{\"refresh\":\"$refresh\"}" 2>/dev/null) || { bad=$((bad + 1)); tokens=$(login "$node" alice 2>/dev/null) || continue; }
        fi
        refresh=$(echo "$tokens" | field refresh)
        ok=$((ok + 1))
    done
    echo "$ok $bad" >"$work/refreshes"
}
# reader NODE: list alice's notes through NODE.
reader() {
    local node=$1 access n=0
    access=$(login "$node" alice | field access)
    while [ "$(ms)" -lt "$end" ]; do
        curl -sS -m 5 -o /dev/null "$node/api/notes/?limit=5" -H "Authorization: Bearer $access" 2>/dev/null && n=$((n + 1))
    done
    echo "$n" >"$work/lists"
}

echo "== $DURATION s of clients on both nodes; a key rotation; B killed (SIGKILL) half-way and started again"
start=$(ms)
end=$((start + DURATION * 1000))
creator alice "$B" & clients=($!)
creator bob "$A" & clients+=($!)
refresher "$B" & clients+=($!)
reader "$B" & clients+=($!)
# an image through the replica, read back from both nodes (the media folder is shared)
access=$(login "$B" alice | field access)
image=$(curl -sS --fail-with-body "$B/api/notes/" -H "Authorization: Bearer $access" -F title=Beach -F cover_image=@docs/sample.png |
    field cover_image)
for node in "$A" "$B"; do
    curl -sS --fail-with-body -o "$work/served.png" "$node$image" && cmp -s "$work/served.png" docs/sample.png ||
        fail "the image is not served the same by $node"
done
sleep $((DURATION / 3))
"$work/jwtnotes" keys rotate -data "$work/shared" | tail -1
sleep $((DURATION / 2 - DURATION / 3))
kill -9 "$jwtnotes_b" "$litefs_b"
wait "$jwtnotes_b" "$litefs_b" 2>/dev/null || true
fusermount3 -uz "$work/b/mnt"
restarted=$(ms)
litefs_up b 20203 false 20202
for _ in $(seq 500); do [ "$(pos b)" = "$(pos a)" ] && break; sleep 0.01; done
caught_up=$(( $(ms) - restarted ))
jwtnotes_up b 18102 -primary-url "$A"
wait "${clients[@]}"

echo "== every acknowledged note on both nodes; the same lists"
for _ in $(seq 200); do [ "$(pos b)" = "$(pos a)" ] && break; sleep 0.01; done
[ "$(pos b)" = "$(pos a)" ] || fail "B is at $(pos b), A at $(pos a)"
lost=0 compared=0
for name in alice bob; do
    access=$(login "$A" "$name" | field access)
    for id in $(cat "$work/acked-$name"); do
        a=$(curl -sS "$A/api/notes/$id/" -H "Authorization: Bearer $access")
        b=$(curl -sS "$B/api/notes/$id/" -H "Authorization: Bearer $access")
        [[ "$a" == '{"id":'* && "$a" == "$b" ]] || { lost=$((lost + 1)); echo "note $id of $name: A $a, B $b"; }
    done
    for offset in $(seq 0 100 2000); do
        a=$(curl -sS "$A/api/notes/?mine=1&limit=100&offset=$offset" -H "Authorization: Bearer $access")
        b=$(curl -sS "$B/api/notes/?mine=1&limit=100&offset=$offset" -H "Authorization: Bearer $access")
        [ "$a" = "$b" ] || { lost=$((lost + 1)); echo "the lists of $name at offset $offset differ"; }
        compared=$((compared + 1))
        [ "$a" = '[]' ] && break
    done
done
missed=$(cat "$work"/missed-* | wc -l)

echo "== a logout on the primary, refused by the replica"
tokens=$(login "$A" bob)
access=$(echo "$tokens" | field access)
[ "$(curl -sS -o /dev/null -w '%{http_code}' "$B/api/profile/" -H "Authorization: Bearer $access")" = 200 ] || fail "B refuses a fresh token"
curl -sS --fail-with-body -o /dev/null "$A/api/token/blacklist/" -H 'Content-Type: application/json' \
    -d "{\"refresh\":\"$(echo "$tokens" | field refresh)\"}"
revoked=$(ms)
until [ "$(curl -sS -o /dev/null -w '%{http_code}' "$B/api/profile/" -H "Authorization: Bearer $access")" = 401 ]; do
    [ $(( $(ms) - revoked )) -lt 1000 ] || fail "B still takes a logged-out session's token after 1 s"
done
revocation=$(( $(ms) - revoked ))

echo "== a revoked key: refused by the replica when the command returns"
access=$(login "$A" bob | field access)
[ "$(curl -sS -o /dev/null -w '%{http_code}' "$B/api/profile/" -H "Authorization: Bearer $access")" = 200 ] || fail "B refuses a fresh token"
kid=$("$work/jwtnotes" keys list -data "$work/shared" | awk '$4 == "current" { print $1 }')
"$work/jwtnotes" keys revoke "$kid" -data "$work/shared" | tail -1
[ "$(curl -sS -o /dev/null -w '%{http_code}' "$B/api/profile/" -H "Authorization: Bearer $access")" = 401 ] ||
    fail "B takes a token of the key revoked"

echo "== failover by hand: A stops; B's LiteFS restarts as the candidate, its jwtnotes as the primary"
lag=$(cat "$work/b/mnt/.lag" 2>/dev/null || echo ?)
kill "$jwtnotes_a" "$jwtnotes_b"
wait "$jwtnotes_a" "$jwtnotes_b" 2>/dev/null || true
last=$(pos a)
for _ in $(seq 200); do [ "$(pos b)" = "$last" ] && break; sleep 0.01; done
kill "$litefs_a" "$litefs_b"
wait "$litefs_a" "$litefs_b" 2>/dev/null || true
fusermount3 -uz "$work/a/mnt" 2>/dev/null || true
fusermount3 -uz "$work/b/mnt" 2>/dev/null || true
failover=$(ms)
litefs_up b 20203 true 20203
# the new primary has every transaction the old one made (stopped first,
# with B caught up), before jwtnotes starts on it
[ "$(pos b)" = "$last" ] || fail "B is at $(pos b), A ended at $last"
jwtnotes_up b 18102
[ ! -e "$work/b/mnt/.primary" ] || fail "B's LiteFS still names another primary"
tokens=$(login "$B" alice) || fail "log in on B after the failover: $tokens"
access=$(echo "$tokens" | field access)
curl -sS --fail-with-body -o /dev/null "$B/api/notes/" -H "Authorization: Bearer $access" \
    -H 'Content-Type: application/json' -d '{"title":"after the failover"}'
failover_ms=$(( $(ms) - failover ))
for id in $(cat "$work/acked-alice"); do
    [ "$(curl -sS -o /dev/null -w '%{http_code}' "$B/api/notes/$id/" -H "Authorization: Bearer $access")" = 200 ] ||
        { lost=$((lost + 1)); echo "note $id is not on B after the failover"; }
done

requests_a=$(grep -c 'msg=request ' "$work/a/jwtnotes.log" || true)
requests_b=$(grep -c 'msg=request ' "$work/b/jwtnotes.log" || true)
forwarded=$(grep -c 'msg=forwarded' "$work/b/jwtnotes.log" || true)
slowest=$(grep -o 'caught_up_in=[0-9.]*[mµn]*s' "$work/b/jwtnotes.log" | cut -d= -f2 | sort -h | tail -1)
read -r refreshes refresh_failures <"$work/refreshes"
echo "figures: $DURATION s of load; requests answered by A $requests_a (of them forwarded by B $forwarded), by B itself $requests_b"
echo "figures: notes acknowledged through B $(wc -l <"$work/acked-alice"), through A $(wc -l <"$work/acked-bob"); read back at once but missing: $missed"
echo "figures: refreshes and logins through B $refreshes ($refresh_failures failed while B was down); lists through B $(cat "$work/lists")"
echo "figures: slowest wait of a forwarded write for B's copy $slowest; B caught up after its restart in $caught_up ms"
echo "figures: a logout on A refused by B after $revocation ms; LiteFS's lag on B at the end: $lag"
echo "figures: failover by hand, from stopping A to a write on B: $failover_ms ms; lists compared $compared; lost or different $lost"
[ "$lost" = 0 ] && [ "$missed" = 0 ] || fail "$lost lost or different, $missed not read back"
echo "litefs: ok"
