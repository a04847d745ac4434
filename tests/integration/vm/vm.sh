# Guest harness for the virtiofs tests and benchmark (sourced, bash).
# Boots Debian's stock kernel (uncompressed, through QEMU's PVH entry) with
# a busybox initramfs under QEMU/TCG, attaches a vhost-user-fs device, runs
# a shell script in the guest and collects its output from a serial port.
#
#   vm_prepare            fetch/extract the kernel and build the initramfs
#                         (cached); returns 1 with $VM_SKIP set if impossible
#   vm_run NAME SOCK SCRIPT [QEMU ARGS...]
#                         boots once in the foreground: $VM_DIR/NAME/out.log is
#                         the script's output, console.log the kernel's;
#                         returns QEMU's status (124 on timeout)
#   vm_start NAME SOCK SCRIPT [QEMU ARGS...]
#                         same in the background; $VM_PID is QEMU's pid
#   vm_kill               SIGKILLs the guest of vm_start
#   vm_wait_for NAME TEXT SECS   waits until out.log contains TEXT
#
# Settings: VM_CACHE (kernel and initramfs cache, default /var/cache/castore-vm
# or $BUILD_DIR/vm-cache), VM_MEM (512M), VM_SMP (1), VM_TIMEOUT (300 s),
# VM_TAG (store), VM_QUEUE_SIZE (1024), VM_REBOOT=1 to let the guest reboot.

VM_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VM_MODULES="virtio_pci virtio_blk virtiofs"
VM_MEM=${VM_MEM:-512M}
VM_SMP=${VM_SMP:-1}
VM_TIMEOUT=${VM_TIMEOUT:-300}
VM_TAG=${VM_TAG:-store}
VM_QUEUE_SIZE=${VM_QUEUE_SIZE:-1024}
VM_SKIP=

vm_log() { echo "# vm: $*" >&2; }

vm_cache_dir() {
        if [ -n "${VM_CACHE:-}" ]; then :
        elif mkdir -p /var/cache/castore-vm 2>/dev/null && [ -w /var/cache/castore-vm ]; then
                VM_CACHE=/var/cache/castore-vm
        else
                VM_CACHE=${BUILD_DIR:-/tmp}/vm-cache
        fi
        mkdir -p "$VM_CACHE"
}

# The kernel package linux-image-amd64 points at, and its version.
vm_kernel_pkg() {
        local pkg
        pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n1)
        if [ -z "$pkg" ]; then
                apt-get update -qq >/dev/null 2>&1 || true
                pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n1)
        fi
        [ -n "$pkg" ] || return 1
        local ver
        ver=$(apt-cache policy "$pkg" 2>/dev/null | sed -n 's/^ *Candidate: //p')
        echo "$pkg ${ver:-unknown}"
}

# Module file (compressed or not) by name, searching the extracted tree.
vm_mod_file() {
        local n=$1
        find "$2/kernel" -type f \( -name "$n.ko*" -o -name "${n//_/-}.ko*" \) | head -n1
}

# Copies module $1 and its dependencies (depends= in .modinfo) into $3,
# appending load order (dependencies first) to $3/order.
vm_add_module() {
        local n=${1//-/_} kmods=$2 dest=$3
        grep -qx "$n" "$dest/order" 2>/dev/null && return 0
        if grep -qE "/(${n}|${n//_/-})\.ko$" "$kmods/modules.builtin"; then return 0; fi
        local f; f=$(vm_mod_file "$n" "$kmods")
        [ -n "$f" ] || { vm_log "module $n not found"; return 1; }
        case $f in
        *.ko) cp "$f" "$dest/$n.ko" ;;
        *.ko.xz) xz -dc "$f" > "$dest/$n.ko" ;;
        *.ko.zst) zstd -qdc "$f" > "$dest/$n.ko" ;;
        *.ko.gz) gzip -dc "$f" > "$dest/$n.ko" ;;
        esac
        local deps d
        deps=$(tr '\0' '\n' < "$dest/$n.ko" | sed -n 's/^depends=//p' | head -n1)
        for d in ${deps//,/ }; do vm_add_module "$d" "$kmods" "$dest" || return 1; done
        echo "$n" >> "$dest/order"
}

vm_prepare_kernel() {
        local pv pkg ver
        pv=$(vm_kernel_pkg) || { VM_SKIP="cannot resolve linux-image-amd64 (apt-get update failed?)"; return 1; }
        pkg=${pv% *} ver=${pv#* }
        VM_KDIR=$VM_CACHE/$pkg-$ver
        [ -s "$VM_KDIR/vmlinux" ] && [ -s "$VM_KDIR/mods/order" ] && return 0
        vm_log "preparing guest kernel $pkg $ver (once)"
        local tmp; tmp=$(mktemp -d "$VM_CACHE/dl.XXXXXX")
        if ! (cd "$tmp" && apt-get download "$pkg" >/dev/null 2>&1); then
                apt-get update -qq >/dev/null 2>&1 || true
                (cd "$tmp" && apt-get download "$pkg" >/dev/null 2>&1) ||
                        { rm -rf "$tmp"; VM_SKIP="apt-get download $pkg failed"; return 1; }
        fi
        dpkg-deb -x "$tmp"/*.deb "$tmp/x" || { rm -rf "$tmp"; VM_SKIP="dpkg-deb failed"; return 1; }
        local bz kver
        bz=$(ls "$tmp"/x/boot/vmlinuz-* | head -n1)
        kver=${bz##*/vmlinuz-}
        rm -rf "$VM_KDIR.new"
        mkdir -p "$VM_KDIR.new/mods"
        python3 "$VM_HERE/extract-vmlinux.py" "$bz" "$VM_KDIR.new/vmlinux" ||
                { rm -rf "$tmp" "$VM_KDIR.new"; VM_SKIP="cannot extract vmlinux from $bz"; return 1; }
        : > "$VM_KDIR.new/mods/order"
        local m
        for m in $VM_MODULES; do
                vm_add_module "$m" "$tmp/x/lib/modules/$kver" "$VM_KDIR.new/mods" ||
                        { rm -rf "$tmp" "$VM_KDIR.new"; VM_SKIP="kernel module $m missing"; return 1; }
        done
        echo "$kver" > "$VM_KDIR.new/kver"
        rm -rf "$tmp" "$VM_KDIR"
        mv "$VM_KDIR.new" "$VM_KDIR"
}

vm_prepare_initramfs() {
        local key
        key=$(cat "$VM_HERE/init" "$VM_HERE/vmtool.c" /bin/busybox "$VM_KDIR/kver" | sha256sum | cut -c1-16)
        VM_BASE=$VM_CACHE/base-$key.cpio.gz
        [ -s "$VM_BASE" ] && return 0
        local root; root=$(mktemp -d "$VM_CACHE/root.XXXXXX")
        mkdir -p "$root"/{bin,dev,proc,sys,tmp,mnt,vm,lib/modules}
        cp /bin/busybox "$root/bin/busybox"
        gcc -static -O2 -o "$root/bin/vmtool" "$VM_HERE/vmtool.c" ||
                { rm -rf "$root"; VM_SKIP="cannot build the static guest helper (gcc -static)"; return 1; }
        cp "$VM_KDIR"/mods/*.ko "$VM_KDIR/mods/order" "$root/lib/modules/"
        install -m 755 "$VM_HERE/init" "$root/init"
        (cd "$root" && find . | LC_ALL=C sort | /bin/busybox cpio -o -H newc 2>/dev/null | gzip -1) > "$VM_BASE.tmp"
        mv "$VM_BASE.tmp" "$VM_BASE"
        rm -rf "$root"
}

vm_prepare() {
        local t
        for t in qemu-system-x86_64 gcc python3 dpkg-deb apt-get xz; do
                command -v $t >/dev/null 2>&1 || { VM_SKIP="$t not installed (scripts/deps.sh test)"; return 1; }
        done
        [ -x /bin/busybox ] && ! LC_ALL=C file -b /bin/busybox 2>/dev/null | grep -q dynamic ||
                { VM_SKIP="/bin/busybox missing or not static (busybox-static)"; return 1; }
        vm_cache_dir
        (
                flock 9
                vm_prepare_kernel && vm_prepare_initramfs
                [ -z "$VM_SKIP" ] || { echo "$VM_SKIP" > "$VM_CACHE/.skip"; exit 1; }
        ) 9> "$VM_CACHE/.lock" || { VM_SKIP=$(cat "$VM_CACHE/.skip" 2>/dev/null || echo "guest preparation failed"); return 1; }
        # the subshell cannot export: recompute the (now cached) paths
        vm_prepare_kernel && vm_prepare_initramfs || return 1
        VM_DIR=${VM_DIR:-${T_TMP:-/tmp}/vm}
        mkdir -p "$VM_DIR"
}

# Builds the per-boot initramfs (base + the script) and the QEMU command.
vm_setup() {
        local name=$1 sock=$2 script=$3; shift 3
        local d=$VM_DIR/$name
        rm -rf "$d"; mkdir -p "$d/ovl/vm"
        cp "$script" "$d/ovl/vm/run.sh"
        (cd "$d/ovl" && find . | LC_ALL=C sort | /bin/busybox cpio -o -H newc 2>/dev/null | gzip -1) > "$d/ovl.cpio.gz"
        cat "$VM_BASE" "$d/ovl.cpio.gz" > "$d/initrd"
        : > "$d/out.log"; : > "$d/console.log"
        VM_CMD=(qemu-system-x86_64 -accel tcg -cpu max -m "$VM_MEM" -smp "$VM_SMP"
                -nodefaults -no-user-config -display none
                -object "memory-backend-memfd,id=mem,size=$VM_MEM,share=on" -numa node,memdev=mem
                -serial "file:$d/console.log" -serial "file:$d/out.log"
                -kernel "$VM_KDIR/vmlinux" -initrd "$d/initrd"
                -append "console=ttyS0 quiet loglevel=4 panic=-1 8250.nr_uarts=2")
        [ "${VM_REBOOT:-0}" = 1 ] || VM_CMD+=(-no-reboot)
        if [ "$sock" != none ]; then
                VM_CMD+=(-chardev "socket,id=vfs,path=$sock"
                         -device "vhost-user-fs-pci,chardev=vfs,tag=$VM_TAG,queue-size=$VM_QUEUE_SIZE")
        fi
        VM_CMD+=("$@")
        printf '%q ' "${VM_CMD[@]}" > "$d/qemu.cmd"
}

vm_run() {
        local name=$1
        vm_setup "$@" || return 125
        local rc=0
        timeout -k 5 "$VM_TIMEOUT" "${VM_CMD[@]}" > "$VM_DIR/$name/qemu.err" 2>&1 < /dev/null || rc=$?
        return $rc
}

vm_start() {
        local name=$1
        vm_setup "$@" || return 125
        # QEMU itself (not a wrapper) is $VM_PID, so that killing it kills
        # the guest; a watchdog enforces the timeout
        "${VM_CMD[@]}" > "$VM_DIR/$name/qemu.err" 2>&1 < /dev/null &
        VM_PID=$!
        ( sleep "$VM_TIMEOUT"; kill -9 "$VM_PID" ) > /dev/null 2>&1 &
        VM_WATCHDOG=$!
        disown "$VM_WATCHDOG"
}

# Kills a guest started by vm_start (SIGKILL) and reaps it.
vm_kill() {
        kill -9 "$VM_PID" 2>/dev/null
        wait "$VM_PID" 2>/dev/null
        kill "$VM_WATCHDOG" 2>/dev/null
        return 0
}

vm_wait_for() {
        local name=$1 text=$2 secs=$3 i=0
        while ! grep -qF -- "$text" "$VM_DIR/$name/out.log" 2>/dev/null; do
                i=$((i + 1))
                [ $i -gt $((secs * 10)) ] && return 1
                sleep 0.1
        done
}

# Prints the tail of a boot's logs (for failures).
vm_show() {
        local d=$VM_DIR/$1
        { echo "--- $1: qemu.err"; tail -n 20 "$d/qemu.err"; echo "--- $1: console.log"; tail -n 30 "$d/console.log"
          echo "--- $1: out.log"; tail -n 30 "$d/out.log"; } 2>/dev/null | sed 's/^/# /'
}
