#!/bin/bash
# The Debian package: scripts/deb.sh builds it from this tree
# (dpkg-buildpackage -us -uc -b, a release build: a minute or two on 2
# CPUs); its control fields and contents are checked against what
# `meson install` installs with Debian's prefixes (so man pages, the mount
# helper, units and completion are expected exactly when the tree installs
# them); it is unpacked into an empty directory and the castore found there
# runs an import and reads it back; lintian judges it when installed.
. "$(dirname "$0")/lib.sh"

have dpkg-deb || { skip "deb" "dpkg-deb missing: not a Debian system"; exit 77; }

# ---- build ----
OUT=$T_TMP/out
start=$(date +%s)
rc=0
DEB=$(TMPDIR=$T_TMP "$SRC_DIR/scripts/deb.sh" "$OUT" 2>"$T_TMP/deb.err") || rc=$?
case $rc in
0) ok "scripts/deb.sh builds $(basename "$DEB") ($(($(date +%s) - start)) s)" ;;
3) skip "deb" "$(grep '^deb: ' "$T_TMP/deb.err" | tail -1 | sed 's/^deb: //')"; exit 77 ;;
*) tail -30 "$T_TMP/deb.err" | sed 's/^/# /'; notok "scripts/deb.sh (exit $rc)"; exit 1 ;;
esac

# ---- control fields ----
version=$(meson introspect "$SRC_DIR/meson.build" --projectinfo | python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
changelog=$(dpkg-parsechangelog -l "$SRC_DIR/debian/changelog" -S Version)
expect_eq "debian/changelog has meson's project version" "${changelog%-*}" "$version"
field() { dpkg-deb -f "$DEB" "$1"; }
expect_eq "Package" "$(field Package)" castore
expect_eq "Version" "$(field Version)" "$changelog"
expect_eq "Architecture" "$(field Architecture)" "$(dpkg --print-architecture)"
case $(field Built-Using) in
rust-blake3*) ok "Built-Using names the BLAKE3 sources compiled in ($(field Built-Using))" ;;
*) notok "Built-Using names the BLAKE3 sources: '$(field Built-Using)'" ;;
esac

# ---- contents ----
# every file and link the package holds, as /path
dpkg-deb --fsys-tarfile "$DEB" | tar -tf - | grep -v '/$' | sed 's/^\.//' | sort >"$T_TMP/files"
dpkg-deb -c "$DEB" >"$T_TMP/listing"
if grep -Eq '^-rwxr-xr-x root/root .* \./usr/bin/castore$' "$T_TMP/listing"; then
        ok "deb: /usr/bin/castore, executable, owned by root"
else
        sed 's/^/# /' "$T_TMP/listing"; notok "deb: /usr/bin/castore, executable, owned by root"
fi

# What `meson install` installs, configured (not built) as debhelper does.
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo "$(uname -m)-linux-gnu")
if meson setup "$T_TMP/plan" "$SRC_DIR" --prefix=/usr --sysconfdir=/etc --localstatedir=/var \
        --libdir="lib/$multiarch" -Dtests=false >"$T_TMP/plan.log" 2>&1; then
        meson introspect "$T_TMP/plan" --installed |
                python3 -c 'import json, sys; print("\n".join(sorted(set(json.load(sys.stdin).values()))))' >"$T_TMP/installed"
else
        tail -20 "$T_TMP/plan.log" | sed 's/^/# /'; notok "meson setup with Debian's prefixes"
        : >"$T_TMP/installed"
fi
# in_deb PATH: the package has PATH (a man page compressed by dh_compress),
# or files under PATH (a directory installed with install_subdir)
in_deb() {
        grep -Fxq -e "$1" -e "$1.gz" "$T_TMP/files" ||
                awk -v d="$1/" 'index($0, d) == 1 { f = 1 } END { exit !f }' "$T_TMP/files"
}
# kind NAME REGEX: every installed path matching REGEX is in the package
kind() {
        local name=$1 re=$2 p n=0 missing=()
        while IFS= read -r p; do
                n=$((n + 1))
                in_deb "$p" || missing+=("$p")
        done < <(grep -E "$re" "$T_TMP/installed")
        if [ $n -eq 0 ]; then
                echo "# deb: this tree installs no $name"
        elif [ ${#missing[@]} -eq 0 ]; then
                ok "deb: $name ($n installed by meson, all packaged)"
        else
                printf '# missing: %s\n' "${missing[@]}"; notok "deb: $name (${#missing[@]} of $n missing)"
        fi
}
if [ -s "$T_TMP/installed" ]; then
        kind "castore command" '^/usr/bin/castore$'
        kind "man pages" '^/usr/share/man/'
        kind "mount helper" '/s?bin/mount\.castore$'
        kind "systemd units" '/systemd/(system|user)/'
        kind "bash completion" '/bash-completion/'
        kind "files, all kinds" '.'
        # and nothing else: no test programs, nothing under /usr/local
        extra=()
        while IFS= read -r f; do
                case $f in /usr/share/doc/castore/*) continue ;; esac
                grep -Fxq -e "$f" -e "${f%.gz}" "$T_TMP/installed" && continue
                while IFS= read -r d; do case $f in "$d"/*) continue 2 ;; esac; done <"$T_TMP/installed"
                extra+=("$f")
        done <"$T_TMP/files"
        if [ ${#extra[@]} -eq 0 ]; then ok "deb: nothing that meson does not install (besides /usr/share/doc/castore)"
        else printf '# extra: %s\n' "${extra[@]}"; notok "deb: ${#extra[@]} files meson does not install"; fi
fi
check "deb: /usr/share/doc/castore/copyright" grep -Fxq /usr/share/doc/castore/copyright "$T_TMP/files"

# ---- unpacked into an empty directory, the castore there runs ----
ROOT=$T_TMP/root
mkdir "$ROOT"
check "dpkg-deb -x into an empty directory" dpkg-deb -x "$DEB" "$ROOT"
C() { "$ROOT/usr/bin/castore" --store "$T_TMP/store" "$@"; }
expect_eq "castore --version" "$("$ROOT/usr/bin/castore" --version 2>&1)" "castore $version"
if have readelf; then
        # shlibs: each shared library castore needs comes from a package it depends on
        depends=$(field Depends)
        bad=()
        for so in $(readelf -d "$ROOT/usr/bin/castore" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
                pkg=$(dpkg -S "*/$so" 2>/dev/null | head -1 | cut -d: -f1)
                case ", $depends" in *", $pkg "*|*", $pkg,"*|*", $pkg") ;; *) bad+=("$so (${pkg:-no package})") ;; esac
        done
        if [ ${#bad[@]} -eq 0 ]; then ok "Depends covers every library castore links ($depends)"
        else printf '# Depends: %s\n' "$depends"; notok "Depends lacks: ${bad[*]}"; fi
        case $(readelf -d "$ROOT/usr/bin/castore") in
        *RPATH*|*RUNPATH*) notok "castore has no RPATH/RUNPATH" ;;
        *) ok "castore has no RPATH/RUNPATH" ;;
        esac
else
        skip "Depends covers every library castore links" "readelf missing"
fi
SRC=$T_TMP/src
mkdir -p "$SRC/sub"
printf 'hello from the package\n' >"$SRC/hello"
head -c 300000 /dev/urandom >"$SRC/sub/random"
ln -s hello "$SRC/link"
out=$(C import "$SRC" --name pkgtest 2>"$T_TMP/err") && ok "packaged castore: import ($out)" ||
        { sed 's/^/# /' "$T_TMP/err"; notok "packaged castore: import"; }
expect_eq "packaged castore: cat" "$(C cat pkgtest/hello 2>&1)" "hello from the package"
if C export pkgtest "$T_TMP/export" 2>"$T_TMP/err"; then
        check "packaged castore: export identical" diff -r --no-dereference "$SRC" "$T_TMP/export"
else
        sed 's/^/# /' "$T_TMP/err"; notok "packaged castore: export"
fi
check "packaged castore: verify" C verify

# ---- its dependencies are installable here ----
if have apt-get; then
        check "apt-get --simulate install of the .deb" apt-get -s -qq install "$DEB"
fi

# ---- lintian: errors fail, warnings are shown ----
if have lintian; then
        changes=$(find "$OUT" -name 'castore_*.changes' | head -1)
        lrc=0
        lintian --tag-display-limit 0 "${changes:-$DEB}" >"$T_TMP/lintian" 2>"$T_TMP/lintian.err" || lrc=$?
        grep -E '^[WIP]: ' "$T_TMP/lintian" | sed 's/^/# lintian /'
        if grep -q '^E: ' "$T_TMP/lintian"; then
                grep '^E: ' "$T_TMP/lintian" | sed 's/^/# lintian /'
                notok "lintian: $(grep -c '^E: ' "$T_TMP/lintian") errors"
        elif [ $lrc -eq 0 ]; then
                ok "lintian: no errors ($(grep -c '^W: ' "$T_TMP/lintian") warnings)"
        else
                sed 's/^/# /' "$T_TMP/lintian.err" | tail -20; notok "lintian ran (exit $lrc)"
        fi
else
        skip "lintian" "lintian not installed (apt-get install lintian)"
fi
