# A throwaway S3 server for the tests: Ceph radosgw (Debian's 16.2) on a
# single-node cluster (one monitor, one memstore OSD, no manager, no
# authentication between the daemons), all state under a scratch
# directory, listening on loopback only.  Sourced after lib.sh.
#   s3_start DIR   starts it (ready in ~10-15 s); sets S3_ENDPOINT,
#                  S3_ACCESS_KEY, S3_SECRET_KEY; returns 1 (with the reason
#                  in S3_WHY) if it cannot start here
#   s3_stop / s3_restart_gw   stop everything / stop and restart radosgw
#   s3_stop_gw     stops radosgw only (the endpoint becomes unreachable)
#   s3_curl METHOD PATH [curl args]   a signed request (curl's SigV4 plus
#                  the x-amz-content-sha256 header it leaves out)
#   s3_mb BUCKET   creates a bucket
#   s3_gets        how many GETs of objects radosgw has served so far

S3_EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

s3_free_port() {
        /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

s3_conf() {
        cat <<C
[global]
fsid = $S3_FSID
mon host = v2:127.0.0.1:$S3_MON_PORT
ms bind msgr1 = false
ms mon client mode = crc
ms client mode = crc
ms cluster mode = crc
ms service mode = crc
ms mon cluster mode = crc
ms mon service mode = crc
auth cluster required = none
auth service required = none
auth client required = none
run dir = $S3_DIR/run
log file = $S3_DIR/log/\$name.log
admin socket = $S3_DIR/run/\$name.asok
pid file = $S3_DIR/run/\$name.pid
keyring = $S3_DIR/keyring
mon data = $S3_DIR/mon
osd data = $S3_DIR/osd
mon cluster log file = $S3_DIR/log/cluster.log
osd objectstore = memstore
memstore device bytes = 4294967296
osd pool default size = 1
osd pool default min size = 1
osd crush chooseleaf type = 0
osd pool default pg autoscale mode = off
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
mon data avail crit = 0
mon data avail warn = 0
osd max object name len = 460
osd max object namespace len = 64
rgw frontends = beast endpoint=127.0.0.1:$S3_PORT
rgw data = $S3_DIR/rgw
rgw enable usage log = false
debug rgw = 1
C
}

# s3_run NAME CMD...: starts a daemon in the foreground of a background job
s3_run() {
        local name=$1; shift
        "$@" >"$S3_DIR/log/$name.out" 2>&1 &
        eval "S3_PID_$name=$!"
}

s3_start_gw() {
        s3_run rgw radosgw -c "$S3_DIR/ceph.conf" -n client.admin -f
        wait_until 60 curl -sf -m 2 -o /dev/null "$S3_ENDPOINT/"
}

s3_start() {
        local t
        S3_DIR=$1 S3_WHY=
        for t in ceph-mon ceph-osd radosgw radosgw-admin monmaptool ceph-authtool ceph curl; do
                have "$t" || { S3_WHY="$t is not installed (Debian's radosgw, ceph-mon, ceph-osd)"; return 1; }
        done
        mkdir -p "$S3_DIR/mon" "$S3_DIR/osd" "$S3_DIR/run" "$S3_DIR/log" "$S3_DIR/rgw"
        S3_FSID=$(cat /proc/sys/kernel/random/uuid)
        S3_MON_PORT=$(s3_free_port) S3_PORT=$(s3_free_port)
        S3_ENDPOINT=http://127.0.0.1:$S3_PORT
        S3_ACCESS_KEY=castoretestkey S3_SECRET_KEY=castoretestsecret0123456789
        s3_conf >"$S3_DIR/ceph.conf"
        local c=(-c "$S3_DIR/ceph.conf")
        at_exit "s3_stop"
        if ! { ceph-authtool --create-keyring "$S3_DIR/keyring" --gen-key -n mon. --cap mon 'allow *' &&
                monmaptool --create --fsid "$S3_FSID" --addv a "[v2:127.0.0.1:$S3_MON_PORT]" "$S3_DIR/monmap" &&
                ceph-mon "${c[@]}" --mkfs -i a --monmap "$S3_DIR/monmap"; } >"$S3_DIR/log/mkfs.out" 2>&1; then
                S3_WHY="the Ceph monitor could not be created: $(tail -1 "$S3_DIR/log/mkfs.out")"
                return 1
        fi
        s3_run mon ceph-mon "${c[@]}" -i a -f
        if ! { timeout 30 ceph "${c[@]}" --connect-timeout 20 osd create &&
                ceph-osd "${c[@]}" -i 0 --mkfs --osd-uuid "$(cat /proc/sys/kernel/random/uuid)"; } \
                >>"$S3_DIR/log/mkfs.out" 2>&1; then
                S3_WHY="the Ceph OSD could not be created: $(tail -1 "$S3_DIR/log/mkfs.out")"
                return 1
        fi
        s3_run osd ceph-osd "${c[@]}" -i 0 -f
        if ! s3_start_gw; then
                S3_WHY="radosgw did not answer on $S3_ENDPOINT within 60 s: $(tail -1 "$S3_DIR/log/rgw.out")"
                return 1
        fi
        if ! timeout 60 radosgw-admin "${c[@]}" -n client.admin user create --uid=castore --display-name=castore \
                --access-key="$S3_ACCESS_KEY" --secret-key="$S3_SECRET_KEY" >>"$S3_DIR/log/mkfs.out" 2>&1; then
                S3_WHY="radosgw-admin could not create a user: $(tail -1 "$S3_DIR/log/mkfs.out")"
                return 1
        fi
        export S3_ENDPOINT S3_ACCESS_KEY S3_SECRET_KEY
}

s3_kill() {
        local pid
        pid=$(eval "echo \${S3_PID_$1:-}")
        [ -n "$pid" ] || return 0
        kill "$pid" 2>/dev/null || return 0
        wait_until 20 pid_gone "$pid" || kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        eval "S3_PID_$1="
}

s3_stop_gw() { s3_kill rgw; }
s3_restart_gw() { s3_kill rgw; s3_start_gw; }
s3_stop() { s3_kill rgw; s3_kill osd; s3_kill mon; }

s3_curl() {
        local method=$1 path=$2; shift 2
        curl -sS -m 30 --aws-sigv4 "aws:amz:us-east-1:s3" --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" \
                -H "x-amz-content-sha256: $S3_EMPTY_SHA256" -X "$method" "$@" "$S3_ENDPOINT$path"
}

s3_mb() { s3_curl PUT "/$1" -f -o /dev/null; }

s3_gets() { grep -c '"GET /[^ ?]*/[^ ]* HTTP' "$S3_DIR/log/client.admin.log" 2>/dev/null || true; }
