#!/bin/bash
# castore cache serve against real Nix: Nix substitutes paths castore holds
# (an imported tree, a built path with references and a deriver copied in
# from a cache Nix wrote), checks the signatures made on the fly and
# refuses a wrong key; curl checks the protocol (nix-cache-info, narinfo,
# NAR bytes, HEAD, Range, 404/400, keep-alive); nix copy --to uploads into
# castore, and bad uploads register nothing; a stalled client does not hold
# up others; a corrupt blob cuts a NAR response short.
. "$(dirname "$0")/lib.sh"

for t in nix-store curl python3 b3sum; do
        if ! have $t; then
                skip "cache serve" "$t is not installed (scripts/deps.sh test)"
                exit 0
        fi
done

nix_offline
C() { "$CASTORE" "$@"; }

# ---- store paths: a tree, and a built path referring to a text path ----
TREE=$T_TMP/tree
nix_tree "$TREE"
tp=$(nixs --add "$TREE") || { notok "nix-store --add"; exit 1; }

nix_build_withref

nix-store --generate-binary-cache-key nixcache-1 "$T_TMP/n.sec" "$T_TMP/n.pub"
nix-store --generate-binary-cache-key castore-1 "$T_TMP/k.sec" "$T_TMP/k.pub"
nix-store --generate-binary-cache-key other-1 "$T_TMP/o.sec" "$T_TMP/o.pub"
NKEY=$(cat "$T_TMP/n.pub") KEY=$(cat "$T_TMP/k.pub") OKEY=$(cat "$T_TMP/o.pub")

# ---- castore's store: the tree imported, the built closure copied in ----
ST=$T_TMP/st
export CASTORE_STORE=$ST
imported=$(C import "$TREE" --name tree 2>"$T_TMP/err" | awk '{print $3}')
expect_eq "castore import gives nix-store --add's path" "$imported" "$tp"
SERVED="$tp"
if [ -n "$built" ]; then
        nix copy --store "$NIXROOT" --to "file://$T_TMP/ncache?compression=zstd&secret-key=$T_TMP/n.sec" "$built" 2>"$T_TMP/err" ||
                { sed 's/^/# /' "$T_TMP/err"; notok "nix copy --to file://"; }
        check "castore copy --from a cache Nix wrote" C copy --from "file://$T_TMP/ncache" --trusted-public-keys "$NKEY" "$built"
        SERVED="$SERVED $built $dep"
fi

# start_server LOG ARGS...: runs castore cache serve on a free port; sets
# SRV_PID and URL once it logged that it serves
start_server() {
        local log=$1; shift
        "$CASTORE" cache serve --listen 127.0.0.1:0 -v -v "$@" 2>"$log" &
        SRV_PID=$!
        at_exit "kill $SRV_PID"
        if ! wait_until 20 grep -q "as a Nix binary cache on http://" "$log"; then
                sed 's/^/# /' "$log"; notok "castore cache serve starts"; exit 1
        fi
        URL=$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$log" | head -1)
}
# LeakSanitizer's check at exit cannot run in the sandbox (seccomp refuses
# its ptrace): under AddressSanitizer this one server, whose exit status is
# checked below, runs unconfined; the others are confined in every build
unconfined=""
ldd "$CASTORE" 2>/dev/null | grep -q libasan && unconfined=--sandbox=none
start_server "$T_TMP/srv.log" --sign-key "$T_TMP/k.sec" --priority 42 $unconfined
SRV1=$SRV_PID URL1=$URL
ok "castore cache serve listens on $URL"

# ---- real Nix substitutes from it ----
newroot() { mktemp -d "$T_TMP/root.XXXXXX"; }
R2=$(newroot)
for p in $SERVED; do
        if nix-store --store "$R2" -r "$p" --option substituters "$URL" --option trusted-public-keys "$KEY" \
                >/dev/null 2>"$T_TMP/err"; then
                ok "nix-store -r substitutes $p"
        else sed 's/^/# /' "$T_TMP/err" | tail -5; notok "nix-store -r substitutes $p"; continue; fi
        check "nix-store --verify-path $p" nix-store --store "$R2" --verify-path "$p"
        expect_eq "references of $p as Nix's" "$(nix-store --store "$R2" -q --references "$p" | sort)" \
                "$(nixs -q --references "$p" | sort)"
        expect_eq "NAR hash of $p as Nix's" "$(nix-store --store "$R2" -q --hash "$p")" "$(nixs -q --hash "$p")"
done
cmp_tree() { diff -r --no-dereference "$TREE" "$R2$tp"; }
check "the substituted tree equals the original" cmp_tree
if [ -n "$built" ]; then
        expect_eq "the deriver came along" "$(nix-store --store "$R2" -q --deriver "$built")" "$(nixs -q --deriver "$built")"
fi

# content-addressed paths need no signature (Nix checks their hash): the
# built path is input-addressed
if [ -n "$built" ]; then
        R3=$(newroot)
        if nix-store --store "$R3" -r "$built" --option substituters "$URL" --option trusted-public-keys "$OKEY" \
                >/dev/null 2>"$T_TMP/err"; then
                notok "Nix refuses a cache signed by an untrusted key"
        elif nix-store --store "$R3" --check-validity "$built" 2>/dev/null; then
                notok "Nix refuses a wrong key: nothing valid"
        else ok "Nix refuses a cache signed by an untrusted key ($(grep -o 'lacks a valid signature' "$T_TMP/err" | head -1))"; fi
fi

R4=$(newroot)
# shellcheck disable=SC2086
if nix copy --from "$URL" --to "$R4" --option trusted-public-keys "$KEY" $SERVED 2>"$T_TMP/err"; then
        check "nix copy --from http://: valid in the destination" nix-store --store "$R4" --verify-path "$tp"
else sed 's/^/# /' "$T_TMP/err" | tail -5; notok "nix copy --from http://"; fi

# ---- the protocol, with curl ----
expect_eq "nix-cache-info" "$(curl -sf "$URL/nix-cache-info")" "StoreDir: /nix/store
WantMassQuery: 1
Priority: 42"
h=$(basename "$tp" | cut -c1-32)
curl -sf -D "$T_TMP/hdr" "$URL/$h.narinfo" >"$T_TMP/ni" || notok "GET narinfo"
check "narinfo Content-Type" grep -qi '^Content-Type: text/x-nix-narinfo' "$T_TMP/hdr"
narhash=$(nixs -q --hash "$tp")
narsize=$(nixs -q --size "$tp")
nar32=${narhash#sha256:}
python3 - "$T_TMP/ni" "$tp" "$narhash" "$narsize" <<'PY' && ok "narinfo fields: URL, Compression none, FileHash = NarHash, one Sig" || notok "narinfo fields"
import sys
f = dict()
sigs = []
for l in open(sys.argv[1]):
    k, v = l.rstrip("\n").split(": ", 1) if ": " in l else (l.rstrip("\n").rstrip(":"), "")
    if k == "Sig": sigs.append(v)
    else: f[k] = v
want = {"StorePath": sys.argv[2], "URL": "nar/" + sys.argv[3][7:] + ".nar", "Compression": "none",
        "FileHash": sys.argv[3], "FileSize": sys.argv[4], "NarHash": sys.argv[3], "NarSize": sys.argv[4]}
bad = [k for k in want if f.get(k) != want[k]]
if bad or len(sigs) != 1 or not sigs[0].startswith("castore-1:"):
    sys.exit(f"# {bad} {f} {sigs}")
PY
# the signature verifies: castore's own client checks it (and the NAR hash)
check "castore copy --from the served cache verifies the signature" \
        env CASTORE_STORE="$T_TMP/st-client" "$CASTORE" copy --from "$URL" --trusted-public-keys "$KEY" $SERVED
if CASTORE_STORE="$T_TMP/st-client2" C copy --from "$URL" --trusted-public-keys "$OKEY" "$tp" 2>/dev/null; then
        notok "castore copy --from refuses the served narinfo with another key"
else ok "castore copy --from refuses the served narinfo with another key"; fi

NARURL="$URL/nar/$nar32.nar"
nixs --dump "$NIXROOT$tp" >"$T_TMP/nix.nar"
curl -sf -D "$T_TMP/hdr" "$NARURL" >"$T_TMP/got.nar" || notok "GET NAR"
check "NAR equals nix-store --dump" cmp "$T_TMP/got.nar" "$T_TMP/nix.nar"
check "NAR equals castore nar dump" cmp "$T_TMP/got.nar" <(C nar dump "$tp")
check "NAR Content-Length" grep -qi "^Content-Length: $narsize" "$T_TMP/hdr"
expect_eq "HEAD of the NAR: 200 and the length, no body" \
        "$(curl -sI "$NARURL" | tr -d '\r' | grep -Ei '^(HTTP|Content-Length)' | tr '\n' ' ')" \
        "HTTP/1.1 200 OK Content-Length: $narsize "
expect_eq "HEAD of the narinfo" "$(curl -s -o /dev/null -w '%{http_code}' -I "$URL/$h.narinfo")" 200

# range A B: bytes A..B (B empty: to the end; A empty: the last B bytes)
range() {
        local spec=$1 first=$2 count=$3 code
        code=$(curl -s -r "$spec" -o "$T_TMP/part" -D "$T_TMP/hdr" -w '%{http_code}' "$NARURL")
        [ "$code" = 206 ] || { echo "status $code"; return 1; }
        cmp "$T_TMP/part" <(tail -c +$((first + 1)) "$T_TMP/nix.nar" | head -c "$count") || return 1
        grep -qi "^Content-Range: bytes $first-$((first + count - 1))/$narsize" "$T_TMP/hdr" ||
                { cat "$T_TMP/hdr"; return 1; }
}
check "Range 0-0" range 0-0 0 1
check "Range 10-4095" range 10-4095 10 4086
check "Range inside the large file" range 1000000-2500000 1000000 1500001
check "Range open-ended" range 2000000- 2000000 $((narsize - 2000000))
check "Range suffix (last 1000 bytes)" range -1000 $((narsize - 1000)) 1000
check "Range end beyond the NAR is clamped" range $((narsize - 10))-$((narsize + 100)) $((narsize - 10)) 10
expect_eq "Range beyond the end: 416" "$(curl -s -o /dev/null -w '%{http_code}' -r $((narsize + 5))- "$NARURL")" 416
expect_eq "404: unknown narinfo" "$(curl -s -o /dev/null -w '%{http_code}' "$URL/00000000000000000000000000000000.narinfo")" 404
expect_eq "404: unknown NAR" \
        "$(curl -s -o /dev/null -w '%{http_code}' "$URL/nar/0000000000000000000000000000000000000000000000000000.nar")" 404
expect_eq "404: unknown file" "$(curl -s -o /dev/null -w '%{http_code}' "$URL/nothing-here")" 404
expect_eq "400: malformed narinfo name" "$(curl -s -o /dev/null -w '%{http_code}' "$URL/abc.narinfo")" 400
expect_eq "400: narinfo name not nixbase32" \
        "$(curl -s -o /dev/null -w '%{http_code}' "$URL/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee.narinfo")" 400
expect_eq "405: other methods" "$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$URL/$h.narinfo")" 405
expect_eq "403: uploads without --allow-uploads" \
        "$(curl -s -o /dev/null -w '%{http_code}' -T "$T_TMP/nix.nar" "$URL/nar/$nar32.nar")" 403
curl -sv "$URL/nix-cache-info" "$URL/$h.narinfo" -o /dev/null -o /dev/null 2>"$T_TMP/curl.err"
if grep -qi "Re-using existing connection" "$T_TMP/curl.err"; then ok "keep-alive: two requests on one connection"
else sed 's/^/# /' "$T_TMP/curl.err" | tail -5; notok "keep-alive: two requests on one connection"; fi
check "one log line per request at debug level" grep -q "\"GET /$h.narinfo\" 200" "$T_TMP/srv.log"

# ---- uploads: nix copy --to http:// into castore ----
ST2=$T_TMP/st-up
CASTORE_STORE=$ST2 start_server "$T_TMP/up.log" --allow-uploads
UP=$URL
if nix copy --store "$NIXROOT" --to "$UP?compression=xz" "$tp" 2>"$T_TMP/err"; then
        ok "nix copy --to http://...?compression=xz"
else sed 's/^/# /' "$T_TMP/err" | tail -5; notok "nix copy --to http://...?compression=xz"; fi
expect_eq "uploaded: castore path-info has Nix's NAR hash" \
        "$(CASTORE_STORE=$ST2 C path-info "$tp" 2>&1 | grep '^NarHash')" "NarHash: $narhash"
rm -rf "$T_TMP/export"
check "uploaded: export equals the tree" sh -c "CASTORE_STORE=$ST2 $CASTORE export $tp $T_TMP/export && diff -r --no-dereference $TREE $T_TMP/export"
expect_eq "uploaded: castore's NAR hash verifies" "$(CASTORE_STORE=$ST2 C nar hash "$tp")" "$narhash"
if [ -n "$built" ]; then
        if nix copy --store "$NIXROOT" --to "$UP?compression=zstd&secret-key=$T_TMP/n.sec" "$built" 2>"$T_TMP/err"; then
                ok "nix copy --to http:// with a secret key, references first"
        else sed 's/^/# /' "$T_TMP/err" | tail -5; notok "nix copy --to http:// with a secret key"; fi
        CASTORE_STORE=$ST2 C path-info --json "$built" >"$T_TMP/pi.json" 2>&1
        nix path-info --store "$NIXROOT" --json "$built" >"$T_TMP/nix.json" 2>/dev/null
        python3 - "$T_TMP/pi.json" "$T_TMP/nix.json" <<'PY' && ok "uploaded path with references: PathInfo as Nix's, signed" || notok "uploaded path with references"
import json, sys
c = json.load(open(sys.argv[1]))[0]
n = json.load(open(sys.argv[2]))[0]
for k in ("narHash", "narSize", "references", "deriver"):
    if c.get(k) != n.get(k):
        sys.exit(f"# {k}: castore {c.get(k)!r}, nix {n.get(k)!r}")
if not any(s.startswith("nixcache-1:") for s in c.get("signatures", [])):
    sys.exit(f"# signatures {c.get('signatures')!r}")
PY
        # a fresh narinfo cache: the one nix copy filled names the uploaded .nar.zst
        check "uploaded: Nix substitutes it back" env XDG_CACHE_HOME="$T_TMP/cache-fresh" nix-store --store "$(newroot)" \
                -r "$built" --option substituters "$UP" --option trusted-public-keys "$NKEY"
fi

# ---- bad uploads register nothing: a cache Nix wrote, uncompressed ----
T2=$T_TMP/tree2
mkdir -p "$T2"; head -c 200000 /dev/urandom >"$T2/data"; printf 'small' >"$T2/small"
tp2=$(nixs --add "$T2")
h2=$(basename "$tp2" | cut -c1-32)
nix copy --store "$NIXROOT" --to "file://$T_TMP/plain?compression=none" "$tp2" 2>/dev/null
NI=$T_TMP/plain/$h2.narinfo
if nix copy --store "$NIXROOT" --to "$URL1" "$tp2" 2>"$T_TMP/err"; then notok "nix copy --to a server without --allow-uploads fails"
else ok "nix copy --to a server without --allow-uploads fails ($(grep -o '403' "$T_TMP/err" | head -1))"; fi
narfile=$(sed -n 's/^URL: //p' "$NI")
put() { curl -s -o "$T_TMP/put.out" -w '%{http_code}' -T "$1" "$UP/$2"; }
registered() { CASTORE_STORE=$ST2 C path-info "$1" >/dev/null 2>&1; }
expect_eq "narinfo whose NAR never arrived: 404" "$(put "$NI" "$h2.narinfo")" 404
cp "$T_TMP/plain/$narfile" "$T_TMP/flipped.nar"
printf '\x55' | dd of="$T_TMP/flipped.nar" bs=1 seek=150000 conv=notrunc 2>/dev/null
expect_eq "a NAR with a flipped content byte is accepted as pending" "$(put "$T_TMP/flipped.nar" "$narfile")" 200
expect_eq "its narinfo is refused (hash mismatch): 400" "$(put "$NI" "$h2.narinfo")" 400
check "the reason is in the body" grep -q "differ" "$T_TMP/put.out"
head -c 100000 "$T_TMP/plain/$narfile" >"$T_TMP/trunc.nar"
expect_eq "a truncated NAR: 400" "$(put "$T_TMP/trunc.nar" "$narfile")" 400
expect_eq "upload of a bad name: 400" "$(put "$T_TMP/trunc.nar" "nar/x.tar")" 400
expect_eq "the right NAR: 200" "$(put "$T_TMP/plain/$narfile" "$narfile")" 200
expect_eq "HEAD of a pending upload: 200" "$(curl -s -o /dev/null -w '%{http_code}' -I "$UP/$narfile")" 200
sed 's/^NarSize: .*/NarSize: 12345/' "$NI" >"$T_TMP/badsize.narinfo"
expect_eq "a narinfo with another NarSize: 400" "$(put "$T_TMP/badsize.narinfo" "$h2.narinfo")" 400
other=$(nixs -q --hash "$tp")
sed "s|^NarHash: .*|NarHash: $other|" "$NI" >"$T_TMP/badhash.narinfo"
expect_eq "a narinfo with another NarHash: 400" "$(put "$T_TMP/badhash.narinfo" "$h2.narinfo")" 400
expect_eq "a narinfo under another path's name: 400" "$(put "$NI" "$h.narinfo")" 400
head -c 1100000 /dev/zero | tr '\0' 'x' >"$T_TMP/huge"
expect_eq "a narinfo over 1 MiB: 413" "$(put "$T_TMP/huge" "$h2.narinfo")" 413
if registered "$tp2"; then notok "nothing registered after the refusals"; else ok "nothing registered after the refusals"; fi
expect_eq "then the right narinfo binds the pending NAR" "$(put "$NI" "$h2.narinfo")" 200
check "and the path is registered" registered "$tp2"
expect_eq "PUT nix-cache-info is accepted" "$(put "$NI" nix-cache-info)" 200
check "refusals are logged as warnings" grep -q "refused" "$T_TMP/up.log"

# --upload-trusted-public-keys: an unsigned narinfo is refused
ST3=$T_TMP/st-signed
CASTORE_STORE=$ST3 start_server "$T_TMP/signed.log" --allow-uploads --upload-trusted-public-keys "$NKEY"
SIGNED=$URL
if nix copy --store "$NIXROOT" --to "$SIGNED" "$tp2" 2>/dev/null; then notok "unsigned upload refused with upload keys"
else ok "unsigned upload refused with upload keys"; fi
if CASTORE_STORE=$ST3 C path-info "$tp2" >/dev/null 2>&1; then notok "unsigned upload: nothing registered"
else ok "unsigned upload: nothing registered"; fi
check "signed upload accepted with upload keys" nix copy --store "$NIXROOT" --to "$SIGNED?secret-key=$T_TMP/n.sec" "$tp2"
check "signed upload registered" env CASTORE_STORE="$ST3" "$CASTORE" path-info "$tp2"

# ---- robustness: stalled clients do not hold up others ----
URL=$URL1
python3 - "$URL" "$NARURL" "$T_TMP/stalled" "$T_TMP/release" <<'PY' &
import socket, sys, os, time, urllib.parse
u = urllib.parse.urlparse(sys.argv[1]); n = urllib.parse.urlparse(sys.argv[2])
addr = (u.hostname, u.port)
idle = socket.create_connection(addr)                  # connects, sends nothing
half = socket.create_connection(addr)                  # stops mid-request
half.sendall(b"GET /nix-cache-info HTTP/1.1\r\nHost: x\r\n")
reader = socket.create_connection(addr, )              # asks for a NAR, never reads
reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
reader.sendall(b"GET " + n.path.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
open(sys.argv[3], "w").close()
deadline = time.time() + 60
while not os.path.exists(sys.argv[4]) and time.time() < deadline:
    time.sleep(0.05)
PY
PY_PID=$!
at_exit "kill $PY_PID"
if wait_until 20 test -e "$T_TMP/stalled"; then
        start=$(date +%s%N)
        fine=1
        for i in 1 2 3 4 5; do
                curl -sf -m 5 "$URL/$h.narinfo" >/dev/null || fine=0
                curl -sf -m 5 "$NARURL" -o "$T_TMP/again.nar" || fine=0
        done
        ms=$((($(date +%s%N) - start) / 1000000))
        if [ $fine = 1 ] && cmp -s "$T_TMP/again.nar" "$T_TMP/nix.nar" && [ $ms -lt 5000 ]; then
                ok "three stalled clients: 10 requests of another completed in $ms ms"
        else notok "three stalled clients: other requests (fine=$fine, $ms ms)"; fi
else notok "the stalling client connected"; fi
touch "$T_TMP/release"
wait "$PY_PID" 2>/dev/null

# ---- a corrupt blob cuts the NAR short ----
hex=$(b3sum --no-names "$TREE/sub/large")
blob=$(find "$ST/blobs" -name "$hex" -type f | head -1)
if [ -n "$blob" ]; then
        chmod u+w "$blob"
        printf '\x00\x01' | dd of="$blob" bs=1 seek=2000000 conv=notrunc 2>/dev/null
        : >"$T_TMP/cut.nar"
        curl -sS "$NARURL" -o "$T_TMP/cut.nar" 2>"$T_TMP/curl.err"
        rc=$?
        got=$(stat -c %s "$T_TMP/cut.nar")
        if [ $rc -ne 0 ] && [ "$got" -lt "$narsize" ]; then
                ok "corrupt blob: the response is cut short (curl exit $rc after $got of $narsize bytes)"
        else notok "corrupt blob: the response is cut short (curl exit $rc, $got of $narsize bytes)"; fi
        check "the bytes sent before the cut are the NAR's" cmp "$T_TMP/cut.nar" <(head -c "$got" "$T_TMP/nix.nar")
        check "the cut is logged" grep -q "cut short" "$T_TMP/srv.log"
else
        notok "the blob of the large file is in the store"
fi

# ---- clean stop ----
kill -TERM "$SRV1"
if wait_until 10 pid_gone "$SRV1"; then
        wait "$SRV1"; expect_eq "SIGTERM: exits 0" "$?" 0
else notok "SIGTERM stops the server"; fi
