#!/bin/bash
# A Nix binary cache mounted lazily (--path-info-service-addr
# nix+http://…?trusted-public-keys=…): real Nix writes the caches, python's
# http.server serves them.  The first lookup of <hash>-name downloads,
# checks and registers the path; later ones are local (also with the
# server gone); many readers at once share one download; a missing path
# is ENOENT; a wrong key, a flipped or truncated NAR are EIO and register
# nothing; a sandboxed daemon fetches too.
. "$(dirname "$0")/lib.sh"

if ! have nix-store; then
        skip "lazy cache mounts" "nix-store is not installed (scripts/deps.sh test installs nix-bin)"
        exit 0
fi
if [ ! -c /dev/fuse ] || [ "$(id -u)" != 0 ]; then
        skip "lazy cache mounts" "needs root and /dev/fuse"
        exit 0
fi
nix_offline
C() { "$CASTORE" "$@"; }

# ---- two store paths (a tree, a text file) in a signed cache per compression ----
TREE=$T_TMP/tree
nix_tree "$TREE"
tp=$(nixs --add "$TREE" 2>/dev/null) || { notok "nix-store --add"; exit 1; }
txt=$(nix-instantiate --store "$NIXROOT" --eval --read-write-mode -E 'builtins.toFile "note" "a text path"' \
        2>/dev/null | tr -d '"')
[ -n "$txt" ] || { notok "builtins.toFile"; exit 1; }
nix-store --generate-binary-cache-key lazy-1 "$T_TMP/k.sec" "$T_TMP/k.pub" 2>/dev/null
nix-store --generate-binary-cache-key other-1 "$T_TMP/o.sec" "$T_TMP/o.pub" 2>/dev/null
KEY=$(cat "$T_TMP/k.pub")
WWW=$T_TMP/www
for comp in xz none; do
        nix copy --store "$NIXROOT" --to "file://$WWW/$comp?compression=$comp&secret-key=$T_TMP/k.sec" "$tp" "$txt" \
                2>"$T_TMP/err" || { sed 's/^/# /' "$T_TMP/err"; notok "nix copy --to file:// ($comp)"; exit 1; }
done
b_tp=$(basename "$tp") b_txt=$(basename "$txt")
h_tp=${b_tp%%-*}
# bad copies of the uncompressed cache: a flipped NAR byte, a truncated NAR
for bad in flip trunc; do cp -a "$WWW/none" "$WWW/$bad"; done
nar=$(sed -n 's/^URL: //p' "$WWW/none/$h_tp.narinfo")
printf '\xff' | dd of="$WWW/flip/$nar" bs=1 seek=2000000 conv=notrunc 2>/dev/null
truncate -s -1000 "$WWW/trunc/$nar"

PORT=$((20000 + RANDOM % 20000))
(cd "$WWW" && exec /usr/bin/python3 -m http.server --bind 127.0.0.1 "$PORT" >"$T_TMP/http.log" 2>&1) &
HTTP_PID=$!
at_exit "kill $HTTP_PID"
if ! wait_until 20 curl -sf -o /dev/null "http://127.0.0.1:$PORT/xz/nix-cache-info"; then
        skip "lazy cache mounts" "python3 -m http.server did not start on port $PORT"
        exit 0
fi

enc() { printf '%s' "$1" | sed 's/ /%20/g'; }
# lmount MNT STORE CACHE-DIR KEY [ARGS...]: a lazy mount as a daemon
lmount() {
        local m=$1 st=$2 dir=$3 key=$4
        shift 4
        mkdir -p "$m"
        C --store "$st" --path-info-service-addr "nix+http://127.0.0.1:$PORT/$dir?trusted-public-keys=$(enc "$key")" \
                "$@" mount "$m" --daemon 2>"$T_TMP/mount.err" && return 0
        sed 's/^/# /' "$T_TMP/mount.err" | tail -5
        return 1
}
gone() { ! grep -q " $1 " /proc/mounts; }
unmount() { C umount "$1" && wait_until 10 gone "$1"; }
registered() { C --store "$1" path-info "$2" >/dev/null 2>&1; }
nar_gets() { grep -c "GET /$1/nar/" "$T_TMP/http.log"; }

# ---- 1. first lookup downloads, checks, registers; then local ----
ST=$T_TMP/st M=$T_TMP/m
if lmount "$M" "$ST" xz "$KEY"; then
        ok "1. lazy mount of a signed xz cache"
        if registered "$ST" "$tp"; then notok "1. nothing registered before the first lookup"; else
                ok "1. nothing registered before the first lookup"; fi
        check "1. first ls downloads the path" ls "$M/$b_tp"
        check "1. the tree equals the source" diff -r "$TREE" "$M/$b_tp"
        expect_eq "1. the text path" "$(cat "$M/$b_txt")" "a text path"
        check "1. registered in the local store" registered "$ST" "$tp"
        expect_eq "1. PathInfo as Nix's: NarHash" \
                "$(C --store "$ST" path-info "$tp" | sed -n 's/^NarHash: //p')" \
                "$(nixs -q --hash "$tp")"
        check "1. the signature was kept" sh -c "C() { \"$CASTORE\" \"\$@\"; }; C --store '$ST' path-info '$tp' | grep -q '^Sig: lazy-1:'"
        n=$(nar_gets xz)
        cat "$M/$b_tp/sub/large" >/dev/null
        expect_eq "1. a second read downloads nothing" "$(nar_gets xz)" "$n"
        check "1. daemon sandboxed (Seccomp 2, NoNewPrivs 1)" sh -c \
                "p=\$(pgrep -f -- 'mount $M --daemon' | head -1); grep -q '^Seccomp:[[:space:]]*2' /proc/\$p/status && grep -q '^NoNewPrivs:[[:space:]]*1' /proc/\$p/status"
        if ls "$M/00000000000000000000000000000000-missing" 2>"$T_TMP/err"; then
                notok "1. a path the cache lacks"
        else grep -q 'No such file' "$T_TMP/err" && ok "1. a path the cache lacks is ENOENT" ||
                { sed 's/^/# /' "$T_TMP/err"; notok "1. a path the cache lacks is ENOENT"; }
        fi
        check "1. umount" unmount "$M"
else
        notok "1. lazy mount of a signed xz cache"
fi

# ---- 2. the server gone: what was fetched is still served ----
kill "$HTTP_PID"; wait "$HTTP_PID" 2>/dev/null
if lmount "$M" "$ST" xz "$KEY"; then
        ok "2. lazy mount with the cache unreachable"
        check "2. a fetched path is served from the store" diff -r "$TREE" "$M/$b_tp"
        if ls "$M/00000000000000000000000000000000-missing" 2>/dev/null; then
                notok "2. an unfetched path fails (no server)"
        else ok "2. an unfetched path fails (no server)"; fi
        check "2. umount" unmount "$M"
else
        notok "2. lazy mount with the cache unreachable"
fi
(cd "$WWW" && exec /usr/bin/python3 -m http.server --bind 127.0.0.1 "$PORT" >>"$T_TMP/http.log" 2>&1) &
HTTP_PID=$!
at_exit "kill $HTTP_PID"
wait_until 20 curl -sf -o /dev/null "http://127.0.0.1:$PORT/xz/nix-cache-info" || { notok "http server restart"; exit 1; }

# ---- 3. many readers at once: one download ----
ST3=$T_TMP/st3
if lmount "$M" "$ST3" none "$KEY"; then
        n=$(nar_gets none)
        for i in 1 2 3 4 5 6; do cmp -s "$TREE/sub/large" "$M/$b_tp/sub/large" & done
        fails=0
        for j in $(jobs -p); do [ "$j" = "$HTTP_PID" ] && continue; wait "$j" || fails=$((fails + 1)); done
        expect_eq "3. six concurrent readers read right" "$fails" 0
        expect_eq "3. one NAR download for all of them" "$(( $(nar_gets none) - n ))" 1
        check "3. umount" unmount "$M"
else
        notok "3. lazy mount (uncompressed cache)"
fi

# ---- 4. refusals: EIO, a log line, nothing registered ----
refused() { # NAME DIR KEY WHY-PATTERN
        local st=$T_TMP/st-$1
        if ! lmount "$M" "$st" "$2" "$3"; then notok "4. $1: mount"; return; fi
        if ls "$M/$b_tp" >/dev/null 2>"$T_TMP/err"; then notok "4. $1: refused"
        else grep -q 'Input/output error' "$T_TMP/err" && ok "4. $1: EIO" ||
                { sed 's/^/# /' "$T_TMP/err"; notok "4. $1: EIO"; }
        fi
        unmount "$M"
        if registered "$st" "$tp"; then notok "4. $1: nothing registered"; else ok "4. $1: nothing registered"; fi
}
refused "wrong key" xz "$(cat "$T_TMP/o.pub")"
refused "flipped NAR byte" flip "$KEY"
refused "truncated NAR" trunc "$KEY"

# ---- 5. usage and one-shot commands ----
if C --store "$T_TMP/st5" --path-info-service-addr "nix+http://127.0.0.1:$PORT/xz" cat "$tp/hello" >/dev/null 2>"$T_TMP/err"; then
        notok "5. trusted-public-keys required"
else grep -q 'trusted-public-keys' "$T_TMP/err" && ok "5. trusted-public-keys required" ||
        { sed 's/^/# /' "$T_TMP/err"; notok "5. trusted-public-keys required"; }
fi
expect_eq "5. castore cat fetches on demand" \
        "$(C --store "$T_TMP/st5" --path-info-service-addr "nix+http://127.0.0.1:$PORT/xz?trusted-public-keys=$(enc "$KEY")" cat "$tp/hello" 2>&1)" \
        "Hello World!"
check "5. castore verify of what was fetched" C --store "$T_TMP/st5" verify
