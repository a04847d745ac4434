# Guest-side checks of a castore virtiofs mount (busybox sh), included into
# a guest script after the host's expected values (E_* variables).  Prints
# "ok - $G: NAME" / "not ok - $G: NAME" lines; ends with "CHECKS-DONE".

t() { # NAME GOT WANT
        if [ "$2" = "$3" ]; then echo "ok - $G: $1"; else
                echo "not ok - $G: $1"
                echo "#   got:  $2"
                echo "#   want: $3"
        fi
}
tz() { # NAME CMD...: ok if CMD succeeds
        n=$1; shift
        if "$@" > /tmp/tz.out 2>&1; then echo "ok - $G: $n"; else
                echo "not ok - $G: $n"; sed 's/^/#   /' /tmp/tz.out | tail -5
        fi
}

M=/mnt
T=$M/t

# root: store paths, then named roots, listed because of --list-root
t "root lists store paths and named roots" "$(vmtool readdir $M | tr '\n' ' ')" "$E_ROOTS"

# modes and sizes
t "regular file mode" "$(stat -c %a $T/file)" 444
t "executable file mode" "$(stat -c %a $T/bin/busybox)" 555
t "directory mode" "$(stat -c %a $T/dir)" 555
t "symlink type" "$(stat -c %F $T/link)" "symbolic link"
t "file size" "$(stat -c %s $T/file)" 6
t "empty file" "$(stat -c %s $T/emptyfile):$(cat $T/emptyfile | wc -c)" "0:0"
t "directory size is its entry count" "$(stat -c %s $T/names)" "$E_NAMES_COUNT"
t "owner is root" "$(stat -c %u:%g $T/file)" "0:0"

# executables run straight from the share
t "static binary runs from the share" "$($T/bin/busybox echo exec-ok)" exec-ok
t "script runs from the share" "$($T/bin/script.sh)" script-ok
$T/busybox.copy true 2>/dev/null
t "non-executable copy does not run" "$?" 126

# symlinks
t "relative symlink target" "$(readlink $T/link)" file
t "absolute symlink target" "$(readlink $T/abslink)" /nix/store/somewhereelse
t "read through a symlink" "$(cat $T/link)" hello
t "directory through a symlink" "$(ls $T/dirlink/)" file-copy

# readdir: name order (raw bytes), non-UTF-8 names
t "readdir order" "$(vmtool readdir $T/names | tr '\n' ' ')" "$E_NAMES"
t "non-UTF-8 name lookup" "$(cat "$T/names/$(printf 'caf\351')")" latin1
t "UTF-8 name lookup" "$(cat "$T/names/$(printf '\303\251t\303\251')")" utf8
t "missing name" "$(vmtool statx $T/names/nope)" ENOENT
n=$(ls $T/wide | wc -l)
t "wide directory lists every entry once" "$n:$(ls $T/wide | sort -u | wc -l)" "$E_WIDE:$E_WIDE"

# identical content shares an inode, unless the executable bit differs
t "same content, same inode" "$(stat -c %i $T/file)" "$(stat -c %i $T/dir/file-copy)"
if [ "$(stat -c %i $T/bin/busybox)" != "$(stat -c %i $T/busybox.copy)" ]; then
        echo "ok - $G: executable and plain copies have distinct inodes"
else
        echo "not ok - $G: executable and plain copies have distinct inodes"
fi

# extended attributes
t "blob digest xattr" "$(vmtool getxattr $T/file user.castore.blob.digest)" "$E_FILE_DIGEST"
t "directory digest xattr" "$(vmtool getxattr $T/dir user.castore.directory.digest)" "$E_DIR_DIGEST"
t "root directory digest xattr" "$(vmtool getxattr $T user.castore.directory.digest)" "$E_ROOT_DIGEST"
t "unknown xattr" "$(vmtool getxattr $T/file user.nope)" ENODATA
t "listxattr" "$(vmtool listxattr $T/file)" user.castore.blob.digest

# read-only: every kind of write is EROFS
for op in write truncate chmod utime setxattr unlink; do
        t "$op is EROFS" "$(vmtool $op $T/file)" EROFS
done
t "create is EROFS" "$(vmtool create $T/newfile)" EROFS
t "mkdir is EROFS" "$(vmtool mkdir $T/newdir)" EROFS
t "rmdir is EROFS" "$(vmtool rmdir $T/dir)" EROFS
t "rename is EROFS" "$(vmtool rename $T/file $T/file2)" EROFS
t "symlink is EROFS" "$(vmtool symlink file $T/link2)" EROFS
t "link is EROFS" "$(vmtool link $T/file $T/file3)" EROFS
t "shell redirection fails" "$( (echo x > $T/file) 2>&1 | grep -c 'Read-only')" 1

# data: a large file, and a whole real tree
t "sha256 of the large file" "$(sha256sum $T/big | cut -d' ' -f1)" "$E_BIG_SHA"
t "entry count of the real tree" "$(cd $M/real && find . | wc -l)" "$E_REAL_COUNT"
t "content of the real tree" "$(cd $M/real && find . -type f | sort | xargs cat | sha256sum | cut -d' ' -f1)" "$E_REAL_SHA"
echo CHECKS-DONE
