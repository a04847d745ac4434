#!/bin/bash
# castore copy --to: binary caches castore writes, read by real Nix.  For
# every compression, Nix copies and substitutes from a file:// cache
# castore wrote (signatures, references, deriver, verify-path), refuses it
# with the wrong key, and writes byte-identical narinfos, NAR names and
# .ls listings for the same paths.  Over HTTP, uploads to a PUT server
# (python3 http.server), a retried 503, an unreachable server.  Imports
# with references (castore import --references) substituted by Nix as
# content-addressed paths.  Refusals that leave no narinfo without its NAR.
. "$(dirname "$0")/lib.sh"

if ! have nix-store; then
        skip "copy to Nix caches" "nix-store is not installed (scripts/deps.sh test installs nix-bin)"
        exit 0
fi

nix_offline
C() { "$CASTORE" "$@"; }
export CASTORE_STORE=$T_TMP/castore
# a fresh narinfo disk cache for every Nix command that reads a cache
fresh_nix_cache() { XDG_CACHE_HOME=$(mktemp -d "$T_TMP/xdg.XXXXXX"); export XDG_CACHE_HOME; }
newroot() { mktemp -u "$T_TMP/root.XXXXXX"; }

nix-store --generate-binary-cache-key test-1 "$T_TMP/k.sec" "$T_TMP/k.pub"
nix-store --generate-binary-cache-key other-1 "$T_TMP/o.sec" "$T_TMP/o.pub"
KEY=$(cat "$T_TMP/k.pub")
OKEY=$(cat "$T_TMP/o.pub")

# ---- what castore holds: a tree it imported, and a Nix-built path with
# references and a Deriver copied in from a cache Nix wrote ----
TREE=$T_TMP/tree
nix_tree "$TREE"
C import --json "$TREE" >"$T_TMP/imp.json" 2>"$T_TMP/err" || { sed 's/^/# /' "$T_TMP/err"; notok "castore import"; exit 1; }
tp=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["storePath"])' "$T_TMP/imp.json")
expect_eq "castore import gives the path nix-store --add gives" "$tp" "$(nixs --add "$TREE")"

if nix_build_withref; then
        if nix copy --store "$NIXROOT" --to "file://$T_TMP/nixsrc?compression=zstd&secret-key=$T_TMP/k.sec" "$built" 2>"$T_TMP/err" &&
                C copy --from "file://$T_TMP/nixsrc" --trusted-public-keys "$KEY" "$built" >/dev/null 2>>"$T_TMP/err"; then
                ok "castore holds $built (references $dep, a Deriver)"
        else
                sed 's/^/# /' "$T_TMP/err"
                notok "castore copy --from a Nix-written cache"
                built="" dep=""
        fi
fi
PATHS="$tp${built:+ $built}"
ALL="$tp${built:+ $built $dep}"

# every narinfo of cache dir DIR has its NAR (and its .ls, if asked)
complete_cache() {
        local ni url
        for ni in "$1"/*.narinfo; do
                [ -e "$ni" ] || continue
                url=$(sed -n 's/^URL: //p' "$ni")
                [ -f "$1/$url" ] || { echo "# $ni: $url missing"; return 1; }
        done
        ! ls "$1" "$1/nar" 2>/dev/null | grep -q '^\.tmp'
}
n_narinfos() { find "$1" -maxdepth 1 -name '*.narinfo' 2>/dev/null | wc -l; }

# nix_reads NAME CACHE_URL TRUST PATHS...: Nix copies PATHS (closures) from
# the cache into a fresh store, verifies each and compares references
nix_reads() {
        local name=$1 url=$2 trust=$3 r2 p bad=""
        shift 3
        r2=$(newroot); fresh_nix_cache
        if ! nix copy --from "$url" --store "$r2" --option trusted-public-keys "$trust" "$@" 2>"$T_TMP/err"; then
                sed 's/^/# /' "$T_TMP/err" | tail -5; notok "$name: nix copy --from"; return 1
        fi
        for p in $(nix-store --store "$r2" -qR "$@"); do
                nix-store --store "$r2" --verify-path "$p" 2>>"$T_TMP/err" || bad="$bad verify:$p"
                [ "$(nix-store --store "$r2" -q --references "$p" | sort)" = "$(C path-info --json "$p" |
                        python3 -c 'import json,sys; print("\n".join(sorted(json.load(sys.stdin)[0]["references"])))')" ] ||
                        bad="$bad refs:$p"
        done
        expect_eq "$name: Nix copied, verified, references equal" "$bad" ""
        LAST_R2=$r2
}

# ---- file:// for every compression ----
for comp in none xz zstd bzip2 br; do
        cache=$T_TMP/cache-$comp
        # shellcheck disable=SC2086
        if C copy --to "file://$cache" --compression "$comp" --sign-key "$T_TMP/k.sec" --json $PATHS \
                >"$T_TMP/out.json" 2>"$T_TMP/err"; then
                ok "$comp: castore copy --to ($(cat "$T_TMP/out.json"))"
        else
                sed 's/^/# /' "$T_TMP/err"; notok "$comp: castore copy --to"; continue
        fi
        check "$comp: every narinfo has its NAR, no temporary file left" complete_cache "$cache"
        # shellcheck disable=SC2086
        nix_reads "$comp" "file://$cache" "$KEY" $PATHS
        # substitution: nix-store -r with the cache as substituter
        r3=$(newroot); fresh_nix_cache
        # shellcheck disable=SC2086
        if nix-store --store "$r3" -r $PATHS --option substituters "file://$cache" \
                --option trusted-public-keys "$KEY" >/dev/null 2>"$T_TMP/err"; then
                check "$comp: substituted by nix-store -r, verified" nix-store --store "$r3" --verify-path "$tp"
        else
                sed 's/^/# /' "$T_TMP/err" | tail -5; notok "$comp: nix-store -r from the cache"
        fi
done

cache=$T_TMP/cache-xz
# shellcheck disable=SC2086
out=$(C copy --to "file://$cache" --json --progress $PATHS 2>"$T_TMP/err")
expect_eq "again: everything already present, nothing written" \
        "$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["copied"], d["present"])' "$out")" \
        "0 $(echo $ALL | wc -w)"
if grep -q "copy: 0 paths written, $(echo $ALL | wc -w) present" "$T_TMP/err"; then ok "--progress: a final line on stderr"
else sed 's/^/# /' "$T_TMP/err"; notok "--progress: a final line on stderr"; fi

# ---- many paths at once: -j ----
MANY=""
for i in 1 2 3 4 5 6 7 8; do
        mkdir -p "$T_TMP/many/t$i/d"
        head -c $((i * 100000)) /dev/urandom >"$T_TMP/many/t$i/d/f"
        printf '%s' "$i" >"$T_TMP/many/t$i/n"
        MANY="$MANY $(C import --json "$T_TMP/many/t$i" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["storePath"])')"
done
for jobs in 1 8; do
        # shellcheck disable=SC2086
        C copy --to "file://$T_TMP/cache-j$jobs" -j $jobs --compression zstd --sign-key "$T_TMP/k.sec" $MANY >/dev/null 2>"$T_TMP/err" ||
                { sed 's/^/# /' "$T_TMP/err"; notok "-j $jobs: castore copy --to"; continue; }
        # shellcheck disable=SC2086
        nix_reads "-j $jobs: 8 paths" "file://$T_TMP/cache-j$jobs" "$KEY" $MANY
done
check "-j 1 and -j 8 write the same files" diff -r "$T_TMP/cache-j1" "$T_TMP/cache-j8"

# ---- Nix's key check ----
if [ -n "$built" ]; then
        r2=$(newroot); fresh_nix_cache
        if nix copy --from "file://$cache" --store "$r2" --option trusted-public-keys "$OKEY" "$built" 2>"$T_TMP/err"; then
                notok "Nix refuses the cache with another key"
        else ok "Nix refuses the cache with another key ($(grep -m1 -o 'lacks a valid signature' "$T_TMP/err"))"; fi
        # unsigned: castore writes without --sign-key, keeping the stored signature
        C copy --to "file://$T_TMP/cache-nokey" --compression zstd "$built" >/dev/null 2>"$T_TMP/err"
        grep -q "^Sig: test-1:" "$T_TMP/cache-nokey/$(basename "$built" | cut -c1-32).narinfo" &&
                ok "without --sign-key the stored signature is kept" || notok "the stored signature is kept"
fi
# a content-addressed path needs no signature Nix trusts: its CA is checked
nix_reads "content-addressed, signed by a key Nix does not trust" "file://$T_TMP/cache-xz" "$OKEY" "$tp"

# ---- byte for byte: what Nix writes for the same paths ----
if [ -n "${LAST_R2:-}" ]; then
        C copy --to "file://$T_TMP/ours?write-nar-listing=1" --compression none --sign-key "$T_TMP/k.sec" $PATHS \
                >/dev/null 2>"$T_TMP/err" || { sed 's/^/# /' "$T_TMP/err"; notok "copy --to with a listing"; }
        nix_reads "the none cache, for Nix to write it again" "file://$T_TMP/cache-none" "$KEY" $PATHS
        # shellcheck disable=SC2086
        if nix copy --store "$LAST_R2" --to "file://$T_TMP/theirs?compression=none&secret-key=$T_TMP/k.sec&write-nar-listing=1" \
                $PATHS 2>"$T_TMP/err"; then
                bad=""
                for p in $ALL; do
                        h=$(basename "$p" | cut -c1-32)
                        cmp -s "$T_TMP/ours/$h.narinfo" "$T_TMP/theirs/$h.narinfo" || bad="$bad $h.narinfo"
                        cmp -s "$T_TMP/ours/$h.ls" "$T_TMP/theirs/$h.ls" || bad="$bad $h.ls"
                done
                diff -u "$T_TMP/ours/$(basename "$tp" | cut -c1-32).narinfo" "$T_TMP/theirs/$(basename "$tp" | cut -c1-32).narinfo" | sed 's/^/# /'
                expect_eq "narinfos and .ls listings byte-identical to Nix's" "$bad" ""
                expect_eq "NAR file names equal to Nix's" "$(ls "$T_TMP/ours/nar")" "$(ls "$T_TMP/theirs/nar")"
                check "nix-cache-info equal to Nix's" cmp "$T_TMP/ours/nix-cache-info" "$T_TMP/theirs/nix-cache-info"
        else
                sed 's/^/# /' "$T_TMP/err" | tail -3; notok "nix copy --to (for the comparison)"
        fi
fi

# ---- HTTP: a server taking PUTs ----
HTTPDIR=$T_TMP/http/root
mkdir -p "$HTTPDIR"
/usr/bin/python3 "$SRC_DIR/tests/integration/put_server.py" "$HTTPDIR" "$T_TMP/http/port" 1 &
HTTP_PID=$!
at_exit "kill $HTTP_PID"
if wait_until 20 test -s "$T_TMP/http/port"; then
        PORT=$(cat "$T_TMP/http/port")
        # shellcheck disable=SC2086
        if C copy --to "http://user:pw@127.0.0.1:$PORT/pfx?compression=zstd&secret-key=$T_TMP/k.sec" --json $PATHS \
                >"$T_TMP/out.json" 2>"$T_TMP/err"; then
                ok "http: castore copy --to, one 503 retried ($(cat "$T_TMP/out.json"))"
        else
                sed 's/^/# /' "$T_TMP/err"; notok "http: castore copy --to"
        fi
        ! grep -q "pw" "$T_TMP/out.json" && ok "http: the report names the URL without credentials" ||
                notok "http: credentials in the report"
        python3 - "$T_TMP/http/requests" <<'PY' && ok "http: NAR PUT (application/x-nix-nar) before its narinfo (text/x-nix-narinfo)" || notok "http: the upload order"
import sys
lines = [l.split() for l in open(sys.argv[1])]
puts = [(l[1], l[2]) for l in lines if l[0] == "PUT"]
assert ("/pfx/nix-cache-info", "text/x-nix-cache-info") in puts, puts
seen_nar = set()
for path, ctype in puts:
    if path.startswith("/pfx/nar/"):
        assert ctype == "application/x-nix-nar", (path, ctype)
        seen_nar.add(path)
    elif path.endswith(".narinfo"):
        assert ctype == "text/x-nix-narinfo", (path, ctype)
        assert seen_nar, "a narinfo before any NAR"
assert sum(p.endswith(".narinfo") for p, _ in puts) >= 1
PY
        check "http: the uploaded cache is complete" complete_cache "$HTTPDIR/pfx"
        # shellcheck disable=SC2086
        nix_reads "http upload" "file://$HTTPDIR/pfx" "$KEY" $PATHS
        : >"$T_TMP/http/requests"
        C copy --to "http://127.0.0.1:$PORT/pfx" $PATHS >/dev/null 2>"$T_TMP/err"
        expect_eq "http: a second copy uploads nothing" "$(grep -c '^PUT' "$T_TMP/http/requests")" 0
else
        skip "http" "the PUT server did not start"
fi
kill "$HTTP_PID" 2>/dev/null

# a server that always fails: bounded retries, an error, no narinfo
mkdir -p "$T_TMP/http503/root"
/usr/bin/python3 "$SRC_DIR/tests/integration/put_server.py" "$T_TMP/http503/root" "$T_TMP/http503/port" 1000 &
P503=$!
at_exit "kill $P503"
if wait_until 20 test -s "$T_TMP/http503/port"; then
        rc=0
        timeout 120 "$CASTORE" copy --to "http://127.0.0.1:$(cat "$T_TMP/http503/port")" "$tp" >/dev/null 2>"$T_TMP/err" || rc=$?
        if [ $rc -eq 1 ] && grep -q "HTTP 503" "$T_TMP/err" && [ "$(n_narinfos "$T_TMP/http503/root")" = 0 ]; then
                ok "http: a server answering 503 fails the copy ($(head -1 "$T_TMP/err"))"
        else sed 's/^/# /' "$T_TMP/err"; notok "http: a server answering 503 (exit $rc)"; fi
fi
kill "$P503" 2>/dev/null

rc=0
timeout 120 "$CASTORE" copy --to "http://user:secret@127.0.0.1:1/cache" "$tp" >/dev/null 2>"$T_TMP/err" || rc=$?
if [ $rc -eq 1 ] && grep -q "127.0.0.1:1/cache" "$T_TMP/err" && ! grep -q secret "$T_TMP/err"; then
        ok "http: an unreachable server is an error naming the URL without credentials ($(head -1 "$T_TMP/err"))"
else sed 's/^/# /' "$T_TMP/err"; notok "http: an unreachable server (exit $rc)"; fi

# ---- import --references: Nix substitutes the path with its references ----
mkdir -p "$T_TMP/app/bin"
printf '#!/bin/sh\nexec %s/script\n' "$tp" >"$T_TMP/app/bin/run"; chmod 0755 "$T_TMP/app/bin/run"
REFS="$tp"
if [ -n "$built" ]; then
        nix path-info --store "$NIXROOT" --json "$built" >"$T_TMP/refs.json"
        REFS_FROM=(--references-from "$T_TMP/refs.json")
        REFS="$tp $built"
else
        REFS_FROM=()
fi
if C import --json --references "$tp" "${REFS_FROM[@]}" "$T_TMP/app" >"$T_TMP/imp.json" 2>"$T_TMP/err"; then
        app=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["storePath"])' "$T_TMP/imp.json")
        expect_eq "import --references: the PathInfo lists them" \
                "$(C path-info --json "$app" | python3 -c 'import json,sys; print(" ".join(sorted(json.load(sys.stdin)[0]["references"])))')" \
                "$(echo $REFS | tr ' ' '\n' | sort | xargs)"
        self=$(C import --json --name app-self --self-reference --references "$tp" "$T_TMP/app" 2>>"$T_TMP/err" |
                python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["storePath"])')
        # unsigned: Nix accepts them only because the path matches the CA and the references
        C copy --to "file://$T_TMP/cache-refs" --compression xz "$app" "$self" >/dev/null 2>"$T_TMP/err" ||
                { sed 's/^/# /' "$T_TMP/err"; notok "copy --to of the imports with references"; }
        # (the Nix-built reference is signed by test-1: trusted; the imports are not signed at all)
        nix_reads "import --references, unsigned: Nix checks the CA" "file://$T_TMP/cache-refs" "$KEY" "$app" "$self"
        r3=$(newroot); fresh_nix_cache
        if nix-store --store "$r3" -r "$app" --option substituters "file://$T_TMP/cache-refs" \
                --option trusted-public-keys "$KEY" >/dev/null 2>"$T_TMP/err"; then
                expect_eq "import --references: nix-store -r substitutes it with its closure" \
                        "$(nix-store --store "$r3" -q --references "$app" | sort | xargs)" "$(echo $REFS | tr ' ' '\n' | sort | xargs)"
        else sed 's/^/# /' "$T_TMP/err" | tail -3; notok "import --references: nix-store -r"; fi
        expect_eq "self-reference: Nix lists the path among its references" \
                "$(nix-store --store "$LAST_R2" -q --references "$self" 2>/dev/null | grep -c "^$self\$")" 1
        # a reference dropped from the narinfo: the path no longer matches, Nix refuses
        cp -a "$T_TMP/cache-refs" "$T_TMP/cache-refs-bad"
        sed -i "s/^References: .*/References: /" "$T_TMP/cache-refs-bad/$(basename "$app" | cut -c1-32).narinfo"
        r2=$(newroot); fresh_nix_cache
        nix copy --from "file://$T_TMP/cache-refs-bad" --store "$r2" --option trusted-public-keys "$KEY" "$app" 2>/dev/null &&
                notok "Nix refuses an unsigned path whose references were changed" ||
                ok "Nix refuses an unsigned path whose references were changed"
else
        sed 's/^/# /' "$T_TMP/err"; notok "import --references"
fi
rc=0; C import --name bad --references /nix/store/00000000000000000000000000000000-absent "$T_TMP/app" 2>"$T_TMP/err" || rc=$?
if [ $rc -ne 0 ] && grep -q "not registered" "$T_TMP/err" && ! C path-info bad >/dev/null 2>&1; then
        ok "import --references of an unregistered path is refused ($(head -1 "$T_TMP/err"))"
else notok "import --references of an unregistered path (exit $rc)"; fi
echo '[{"nopath": 1}]' >"$T_TMP/bad.json"
rc=0; C import --name bad --references-from "$T_TMP/bad.json" "$T_TMP/app" 2>"$T_TMP/err" || rc=$?
expect_eq "import --references-from a file of another shape: usage error" "$rc" 2
rc=0; C import --name bad --references "not-a-path" "$T_TMP/app" 2>"$T_TMP/err" || rc=$?
expect_eq "import --references with a non-path: usage error" "$rc" 2

# ---- refusals: usage errors, and nothing half-written ----
neg=$T_TMP/neg
usage() {
        local name=$1 rc=0
        shift
        C copy --to "file://$neg" "$@" "$tp" >/dev/null 2>"$T_TMP/err" || rc=$?
        if [ $rc -eq 2 ] && [ "$(n_narinfos "$neg")" = 0 ]; then ok "$name: usage error ($(head -1 "$T_TMP/err"))"
        else sed 's/^/# /' "$T_TMP/err"; notok "$name (exit $rc)"; fi
}
usage "a missing signing key file" --sign-key "$T_TMP/absent.sec"
usage "a public key as --sign-key" --sign-key "$T_TMP/k.pub"
usage "an unknown compression" --compression lz4
neg_url=$neg
neg="$neg_url?compression=gzip"; usage "an unknown compression in the URL"; neg=$neg_url
usage "--to with --from" --from "file://$T_TMP/cache-xz"
usage "--to with --trusted-public-keys" --trusted-public-keys "$KEY"
rc=0; C copy --to "file://$neg" /nix/store/00000000000000000000000000000000-absent 2>"$T_TMP/err" || rc=$?
[ $rc -eq 1 ] && grep -q "not registered" "$T_TMP/err" && ok "a path castore does not hold is an error" ||
        notok "a path castore does not hold (exit $rc)"

# a damaged blob: the NAR does not match its PathInfo, the copy fails and
# leaves neither narinfo nor NAR nor temporary file
large=$(find "$CASTORE_STORE/blobs" -type f -size +2M | head -1)
if [ -n "$large" ]; then
        python3 -c "import sys; f=open(sys.argv[1],'r+b'); f.seek(1000); b=f.read(1); f.seek(1000); f.write(bytes([b[0]^1]))" "$large"
        rc=0; C copy --to "file://$T_TMP/cache-damaged" --compression zstd "$tp" >/dev/null 2>"$T_TMP/err" || rc=$?
        if [ $rc -eq 1 ] && [ "$(n_narinfos "$T_TMP/cache-damaged")" = 0 ] && [ -z "$(ls -A "$T_TMP/cache-damaged/nar")" ]; then
                ok "a damaged blob: refused, nothing written ($(head -1 "$T_TMP/err"))"
        else sed 's/^/# /' "$T_TMP/err"; ls -la "$T_TMP/cache-damaged" "$T_TMP/cache-damaged/nar" | sed 's/^/# /'; notok "a damaged blob (exit $rc)"; fi
else
        skip "a damaged blob" "no blob file over 2 MB in the local store"
fi
