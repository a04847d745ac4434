# A throwaway PostgreSQL 15 server for the tests (Debian's postgresql-15):
# initdb and pg_ctl as an unprivileged user, a unix socket in a scratch
# directory, no TCP, fsync off, role castore trusted.  Sourced after lib.sh.
#   pg_require NAME  skips the test (skip NAME, exit 77) if the PostgreSQL 15
#                    programs are missing here
#   pg_setup NAME    makes a cluster and starts it; sets PGD (the socket
#                    directory, usable as ?host=$PGD); the server is stopped
#                    and the directory removed at exit; skips the test (skip
#                    NAME, exit 77) if initdb or the server fails here
#   pg_start / pg_stop   start (waits until it accepts) / stop (fast) it again
#   psql_q DB SQL    runs SQL on DB as castore: one value per line, unaligned

PGBIN=/usr/lib/postgresql/15/bin

pg_require() {
        local t
        for t in initdb pg_ctl psql; do
                [ -x "$PGBIN/$t" ] || { skip "$1" "$PGBIN/$t is missing (Debian's postgresql-15)"; exit 77; }
        done
}

pg_ctl() { (cd / && "${PG_AS[@]}" "$PGBIN/pg_ctl" -D "$PGD/data" "$@"); }
pg_start() {
        pg_ctl -l "$PGD/log" -w -t 60 -o "-c listen_addresses='' -k $PGD -c fsync=off" start >/dev/null
}
pg_stop() { pg_ctl -m fast -w -t 60 stop >/dev/null; }
psql_q() { "$PGBIN/psql" -X -q -t -A -v ON_ERROR_STOP=1 "postgresql:///$1?host=$PGD&user=castore" -c "$2"; }

pg_setup() {
        local owner
        # initdb and pg_ctl refuse root: run them as postgres (or nobody)
        PG_AS=()
        owner=$(id -un)
        if [ "$(id -u)" = 0 ]; then
                owner=postgres
                id postgres >/dev/null 2>&1 || owner=nobody
                PG_AS=(runuser -u "$owner" --)
        fi
        # not under T_TMP: the server's user must reach it, and a socket path
        # must stay short (108 bytes)
        PGD=$(mktemp -d /tmp/castore-pg.XXXXXX)
        chmod 755 "$PGD"
        chown "$owner" "$PGD"
        at_exit "rm -rf '$PGD'"
        if ! (cd / && "${PG_AS[@]}" "$PGBIN/initdb" -D "$PGD/data" -U castore --auth=trust -E UTF8 --no-sync) \
                >"$PGD/initdb.log" 2>&1; then
                sed 's/^/# /' "$PGD/initdb.log" | tail -5
                skip "$1" "initdb failed here (see above)"
                exit 77
        fi
        if ! pg_start; then
                sed 's/^/# /' "$PGD/log" | tail -5
                skip "$1" "the PostgreSQL server did not start (see above)"
                exit 77
        fi
        # registered after the directory's removal, so it runs before it
        at_exit "pg_ctl -m immediate stop"
}
