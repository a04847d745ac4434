#!/bin/bash
# castore copy --from against caches real Nix writes: "nix copy --to
# file://DIR?compression=C&secret-key=K" for every compression Nix 2.8
# writes, then castore copies the closure in: PathInfos equal to Nix's
# (NarHash, NarSize, references, deriver, CA) with the cache's signatures,
# NARs equal to nix-store --dump, exports equal to the tree.  Also over
# HTTP (python3 -m http.server), and refusals that register nothing: no
# or a wrong key, a flipped byte, a truncated NAR, a missing NAR.
. "$(dirname "$0")/lib.sh"

if ! have nix-store; then
        skip "copy from Nix caches" "nix-store is not installed (scripts/deps.sh test installs nix-bin)"
        exit 0
fi

nix_offline
C() { "$CASTORE" "$@"; }

# ---- store paths: a tree (nix-store --add), a text path (builtins.toFile)
# and a built path referring to it (so with References and a Deriver) ----
TREE=$T_TMP/tree
nix_tree "$TREE"
tp=$(nixs --add "$TREE") || { notok "nix-store --add"; exit 1; }

nix_build_withref && ok "nix-build: $built refers to $dep"
PATHS="$tp${built:+ $built}"
ALL="$tp${built:+ $built $dep}"

nix-store --generate-binary-cache-key test-1 "$T_TMP/k.sec" "$T_TMP/k.pub"
nix-store --generate-binary-cache-key other-1 "$T_TMP/o.sec" "$T_TMP/o.pub"
nix-store --generate-binary-cache-key test-1 "$T_TMP/same-name.sec" "$T_TMP/same-name.pub"
KEY=$(cat "$T_TMP/k.pub")

# same_as_nix STORE P: castore's PathInfo of P equals Nix's, signatures
# equal the narinfo's Sig lines, NAR equal to nix-store --dump
same_as_nix() {
        local st=$1 p=$2 cache=$3 h
        h=$(basename "$p" | cut -c1-32)
        CASTORE_STORE=$st C path-info --json "$p" >"$T_TMP/pi.json" 2>"$T_TMP/err" || return 1
        nix path-info --store "$NIXROOT" --json "$p" >"$T_TMP/nix.json" 2>/dev/null || return 1
        python3 - "$T_TMP/pi.json" "$T_TMP/nix.json" "$cache/$h.narinfo" <<'PY' || return 1
import json, sys
c = json.load(open(sys.argv[1]))[0]
n = json.load(open(sys.argv[2]))[0]
sigs = [l.split(": ", 1)[1].strip() for l in open(sys.argv[3]) if l.startswith("Sig: ")]
for k in ("narHash", "narSize", "references", "deriver", "ca"):
    if c.get(k) != n.get(k):
        sys.exit(f"# {k}: castore {c.get(k)!r}, nix {n.get(k)!r}")
if sorted(c.get("signatures", [])) != sorted(sigs) or not sigs:
    sys.exit(f"# signatures: castore {c.get('signatures')!r}, narinfo {sigs!r}")
PY
        CASTORE_STORE=$st C nar dump "$p" | cmp -s - <(nix-store --dump "$NIXROOT$p")
}

registered() { CASTORE_STORE=$1 C path-info "$2" >/dev/null 2>&1; }
none_registered() {
        local p
        for p in $ALL; do registered "$1" "$p" && return 1; done
        return 0
}

# ---- one cache per compression ----
# a fresh store's location (called in $(...): no counter survives)
newstore() { mktemp -u "$T_TMP/store.XXXXXX"; }
for comp in none xz zstd bzip2 br; do
        cache=$T_TMP/cache-$comp
        # shellcheck disable=SC2086
        if ! nix copy --store "$NIXROOT" --to "file://$cache?compression=$comp&secret-key=$T_TMP/k.sec" $PATHS \
                2>"$T_TMP/err"; then
                skip "$comp cache" "nix copy cannot write it: $(tail -1 "$T_TMP/err")"
                continue
        fi
        st=$(newstore)
        # shellcheck disable=SC2086
        if CASTORE_STORE=$st C copy --from "file://$cache" --trusted-public-keys "$KEY" --json $PATHS \
                >"$T_TMP/out.json" 2>"$T_TMP/err"; then
                ok "$comp: castore copy ($(cat "$T_TMP/out.json"))"
        else
                sed 's/^/# /' "$T_TMP/err"; notok "$comp: castore copy"; continue
        fi
        for p in $ALL; do
                if same_as_nix "$st" "$p" "$cache"; then ok "$comp: $p equals Nix's (path-info, signatures, NAR)"
                else sed 's/^/# /' "$T_TMP/err"; notok "$comp: $p equals Nix's"; fi
        done
        rm -rf "$T_TMP/export"
        if CASTORE_STORE=$st C export "$tp" "$T_TMP/export" 2>"$T_TMP/err"; then
                check "$comp: export equals the tree" diff -r --no-dereference "$TREE" "$T_TMP/export"
        else sed 's/^/# /' "$T_TMP/err"; notok "$comp: export"; fi
done

cache=$T_TMP/cache-zstd
[ -d "$cache" ] || cache=$T_TMP/cache-none
if [ -n "$built" ]; then
        # the closure: the reference came along; then again, nothing fetched
        st=$(newstore)
        CASTORE_STORE=$st C copy --from "file://$cache" --trusted-public-keys "$KEY" --json "$built" \
                >"$T_TMP/out.json" 2>"$T_TMP/err"
        check "closure: the reference was copied first" registered "$st" "$dep"
        out=$(CASTORE_STORE=$st C copy --from "file://$cache?trusted=1" --trusted-public-keys "$KEY" --json \
                --progress "$built" 2>"$T_TMP/err")
        if grep -q "copy: 0 paths copied, 1 present" "$T_TMP/err"; then ok "--progress: a final line on stderr"
        else sed 's/^/# /' "$T_TMP/err"; notok "--progress: a final line on stderr"; fi
        expect_eq "closure: a second copy fetches nothing" \
                "$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["copied"], d["present"])' "$out")" "0 1"
        st=$(newstore)
        CASTORE_STORE=$st C copy --from "file://$cache" --trusted-public-keys "$KEY" --no-closure "$built" >/dev/null 2>"$T_TMP/err"
        if registered "$st" "$built" && ! registered "$st" "$dep"; then ok "--no-closure: only the path given"
        else notok "--no-closure: only the path given"; fi
fi

# ---- many paths at once: --jobs ----
MANY=""
for i in 1 2 3 4 5 6 7 8; do
        mkdir -p "$T_TMP/many/t$i/d"
        head -c $((i * 100000)) /dev/urandom >"$T_TMP/many/t$i/d/f"
        printf '%s' "$i" >"$T_TMP/many/t$i/n"
        MANY="$MANY $(nixs --add "$T_TMP/many/t$i")"
done
# shellcheck disable=SC2086
if nix copy --store "$NIXROOT" --to "file://$T_TMP/cache-many?compression=zstd&secret-key=$T_TMP/k.sec" $MANY 2>"$T_TMP/err"; then
        for jobs in 1 8; do
                st=$(newstore)
                # shellcheck disable=SC2086
                CASTORE_STORE=$st C copy --from "file://$T_TMP/cache-many" --trusted-public-keys "$KEY" --jobs $jobs $MANY >/dev/null 2>"$T_TMP/err"
                bad=""
                for p in $MANY; do
                        CASTORE_STORE=$st C nar dump "$p" | cmp -s - <(nix-store --dump "$NIXROOT$p") || bad="$bad $p"
                done
                expect_eq "--jobs $jobs: 8 paths copied, each NAR equal to Nix's" "$bad" ""
        done
        d=$T_TMP/bad-many; cp -a "$T_TMP/cache-many" "$d"
        victim=$(echo $MANY | cut -d' ' -f5)
        nar=$d/$(sed -n 's/^URL: //p' "$d/$(basename "$victim" | cut -c1-32).narinfo")
        python3 -c "import sys; f=open(sys.argv[1],'r+b'); f.seek(20); b=f.read(1); f.seek(20); f.write(bytes([b[0]^0x55]))" "$nar"
        st=$(newstore)
        # shellcheck disable=SC2086
        CASTORE_STORE=$st C copy --from "file://$d" --trusted-public-keys "$KEY" --jobs 4 $MANY >/dev/null 2>"$T_TMP/err"
        rc=$?
        if [ $rc -ne 0 ] && ! registered "$st" "$victim"; then ok "--jobs 4: a corrupt NAR among 8 is refused, not registered"
        else sed 's/^/# /' "$T_TMP/err"; notok "--jobs 4: a corrupt NAR among 8 (exit $rc)"; fi
else
        skip "--jobs" "nix copy failed: $(tail -1 "$T_TMP/err")"
fi

# ---- refusals: each registers nothing ----
# refuse NAME CACHE [copy options]
refuse() {
        local name=$1 dir=$2 st rc=0
        shift 2
        st=$(newstore)
        # shellcheck disable=SC2086
        CASTORE_STORE=$st C copy --from "file://$dir" "$@" $PATHS >/dev/null 2>"$T_TMP/err" || rc=$?
        if [ $rc -ne 0 ] && none_registered "$st"; then ok "$name refused ($(head -1 "$T_TMP/err"))"
        else sed 's/^/# /' "$T_TMP/err"; notok "$name refused (exit $rc)"; fi
}
refuse "no trusted key" "$cache"
refuse "another key" "$cache" --trusted-public-keys "$(cat "$T_TMP/o.pub")"
refuse "a key of the same name that did not sign" "$cache" --trusted-public-keys "$(cat "$T_TMP/same-name.pub")"
st=$(newstore)
CASTORE_STORE=$st C copy --from "file://$cache" --trusted-public-keys "x:notbase64" "$tp" 2>/dev/null
expect_eq "a malformed key is a usage error" "$?" 2

# mangle COMP NAME CMD: a copy of the COMP cache whose NAR of the tree CMD changes
mangle() {
        local comp=$1 name=$2 cmd=$3 dir=$T_TMP/bad-$1-$2 url
        [ -d "$T_TMP/cache-$comp" ] || return 1
        rm -rf "$dir"; cp -a "$T_TMP/cache-$comp" "$dir"
        url=$(sed -n 's/^URL: //p' "$dir/$(basename "$tp" | cut -c1-32).narinfo")
        NAR=$dir/$url eval "$cmd"
        echo "$dir"
}
flip='python3 -c "import sys; f=open(sys.argv[1],\"r+b\"); f.seek(f.seek(0,2)//2); b=f.read(1); f.seek(-1,1); f.write(bytes([b[0]^1]))" "$NAR"'
for comp in none zstd xz; do
        d=$(mangle "$comp" flip "$flip") || continue
        refuse "$comp: a flipped byte in the NAR file" "$d" --trusted-public-keys "$KEY"
        # without FileHash/FileSize (they are not signed) the NAR hash catches it
        sed -i '/^File\(Hash\|Size\): /d' "$d"/*.narinfo
        refuse "$comp: a flipped byte, no FileHash" "$d" --trusted-public-keys "$KEY"
        d=$(mangle "$comp" trunc 'truncate -s $(($(stat -c %s "$NAR") / 2)) "$NAR"') || continue
        refuse "$comp: a truncated NAR" "$d" --trusted-public-keys "$KEY"
        sed -i '/^File\(Hash\|Size\): /d' "$d"/*.narinfo
        refuse "$comp: a truncated NAR, no FileHash" "$d" --trusted-public-keys "$KEY"
done
d=$(mangle none missing 'rm "$NAR"') && refuse "a narinfo whose NAR is missing" "$d" --trusted-public-keys "$KEY"
d=$(mangle none narsize 'sed -i "s/^NarSize: .*/NarSize: 1/" "$(dirname "$NAR")"/../*.narinfo') &&
        refuse "a narinfo whose NarSize was changed (signature)" "$d" --trusted-public-keys "$KEY"
st=$(newstore)
CASTORE_STORE=$st C copy --from "file://$cache" --trusted-public-keys "$KEY" \
        /nix/store/00000000000000000000000000000000-absent 2>/dev/null
[ $? -ne 0 ] && ok "a path the cache does not have is an error" || notok "a path the cache does not have"

st=$(newstore)
# shellcheck disable=SC2086
if CASTORE_STORE=$st C copy --from "file://$cache" --no-check-sigs $PATHS >/dev/null 2>"$T_TMP/err" && registered "$st" "$tp"; then
        ok "--no-check-sigs without keys copies (hashes still checked)"
else sed 's/^/# /' "$T_TMP/err"; notok "--no-check-sigs without keys copies"; fi
d=$(mangle none nosig-flip "$flip") && refuse "--no-check-sigs: a flipped byte" "$d" --no-check-sigs

d=$(mangle none storedir 'sed -i "s|^StoreDir: .*|StoreDir: /gnu/store|" "$(dirname "$NAR")/../nix-cache-info"') &&
        refuse "a cache for another store directory" "$d" --trusted-public-keys "$KEY"
if [ -n "$built" ]; then
        # a reference the cache lacks: the closure is incomplete, nothing is copied
        d=$(mangle none noref 'rm "$(dirname "$NAR")/../$(basename "$dep" | cut -c1-32).narinfo"') &&
                refuse "a closure with a reference missing from the cache" "$d" --trusted-public-keys "$KEY"
fi

# ---- HTTP ----
PORT=$((20000 + RANDOM % 20000))
# served from its parent: the URL has a prefix
(cd "$(dirname "$cache")" && exec /usr/bin/python3 -m http.server --bind 127.0.0.1 "$PORT" >"$T_TMP/http.log" 2>&1) &
HTTP_PID=$!
T_CLEANUP+=("kill $HTTP_PID")
if wait_until 20 python3 -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1])" "http://127.0.0.1:$PORT/$(basename "$cache")/nix-cache-info"; then
        st=$(newstore)
        # shellcheck disable=SC2086
        if CASTORE_STORE=$st C copy --from "http://127.0.0.1:$PORT/$(basename "$cache")/" --trusted-public-keys "$KEY" $PATHS >/dev/null 2>"$T_TMP/err"; then
                ok "http: castore copy (a URL with a prefix)"
                for p in $ALL; do
                        if same_as_nix "$st" "$p" "$cache"; then ok "http: $p equals Nix's"
                        else notok "http: $p equals Nix's"; fi
                done
        else
                sed 's/^/# /' "$T_TMP/err"; notok "http: castore copy"
        fi
        for bad in bad-none-missing bad-zstd-flip bad-xz-flip bad-none-trunc; do
                [ -d "$T_TMP/$bad" ] || continue
                st=$(newstore)
                # shellcheck disable=SC2086
                CASTORE_STORE=$st C copy --from "http://127.0.0.1:$PORT/$bad" --trusted-public-keys "$KEY" \
                        $PATHS >/dev/null 2>"$T_TMP/err"
                rc=$?
                if [ $rc -ne 0 ] && none_registered "$st"; then ok "http: $bad refused ($(head -1 "$T_TMP/err"))"
                else sed 's/^/# /' "$T_TMP/err"; notok "http: $bad refused (exit $rc)"; fi
        done
        st=$(newstore)
        CASTORE_STORE=$st C copy --from "http://127.0.0.1:$PORT/$(basename "$cache")" --trusted-public-keys "$KEY" \
                /nix/store/00000000000000000000000000000000-absent 2>"$T_TMP/err"
        [ $? -ne 0 ] && grep -q "not in the cache" "$T_TMP/err" && ok "http: a 404 narinfo is 'not in the cache'" ||
                { sed 's/^/# /' "$T_TMP/err"; notok "http: a 404 narinfo"; }
else
        skip "http" "python3 -m http.server did not start on port $PORT"
fi
kill "$HTTP_PID" 2>/dev/null
