# bash completion for castore: commands, each command's options, and the
# values some options take.  Installed as bash-completion/completions/castore.

_castore() {
    local cur prev words cword
    if declare -F _init_completion >/dev/null; then
        _init_completion || return
    else
        cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
        words=("${COMP_WORDS[@]}") cword=$COMP_CWORD
    fi

    local commands="import ls stat cat export verify gc roots rm info nar path-info copy cache virtiofs mount umount daemon help"
    local common="--store --blob-service-addr --directory-service-addr --path-info-service-addr
        --cache --store-composition --verbose --quiet --help"

    # the command: the first word after the global options
    local i cmd=""
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
            --store|--blob-service-addr|--directory-service-addr|--path-info-service-addr|--cache|--store-composition)
                ((i++)) ;;
            -*) ;;
            *) cmd=${words[i]}; break ;;
        esac
    done

    case $prev in
        --store|--cache|--store-composition|--sign-key|--references-from)
            COMPREPLY=($(compgen -f -- "$cur")); return ;;
        --compression) COMPREPLY=($(compgen -W "none xz zstd bzip2 br" -- "$cur")); return ;;
        --passthrough|--io-uring) COMPREPLY=($(compgen -W "auto on off" -- "$cur")); return ;;
        --sandbox) COMPREPLY=($(compgen -W "auto none" -- "$cur")); return ;;
        --socket-group) COMPREPLY=($(compgen -g -- "$cur")); return ;;
        --blob-service-addr)
            COMPREPLY=($(compgen -W "grpc+unix:// grpc+http:// objectstore+file://" -- "$cur")); return ;;
        --threads|--jobs|-j|--queues|--uid|--gid|--socket-mode|--fd|--name|--listen|-n|--from|--to|--trusted-public-keys|--references|\
        --directory-service-addr|--path-info-service-addr)
            return ;;
        -o|--options)
            COMPREPLY=($(compgen -W "list_root threads= allow_other passthrough= io_uring= uid= gid= sandbox= debug" \
                -- "${cur##*,}"))
            return ;;
    esac

    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "$common --version" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        fi
        return
    fi

    local opts=""
    case $cmd in
        import) opts="--name --force --json --threads --skip-special --no-nix --no-pack --references --references-from
            --self-reference --progress --no-progress" ;;
        ls) opts="--long --recursive --json -l -R" ;;
        stat|roots|info) opts="--json" ;;
        rm) opts="--force" ;;
        verify) opts="--nar --repair --json --progress --no-progress" ;;
        gc) opts="--dry-run --json --progress --no-progress" ;;
        nar) opts="--name --size" ;;
        path-info) opts="--all --json" ;;
        copy) opts="-j --from --to --trusted-public-keys --no-check-sigs --sign-key --compression --write-nar-listing
            --no-closure --jobs --json --progress --no-progress" ;;
        cache) opts="--listen --sign-key --priority --allow-uploads --upload-trusted-public-keys --sandbox" ;;
        virtiofs) opts="--socket-path --fd --list-root --threads --queues --once --uid --gid --socket-group
            --daemon --sandbox --debug --print-capabilities" ;;
        mount) opts="--list-root --threads --allow-other --daemon --passthrough --io-uring --sandbox --uid --gid --debug
            --options -o" ;;
        umount) opts="--lazy" ;;
        daemon) opts="--listen --socket-mode --sandbox" ;;
        help) COMPREPLY=($(compgen -W "$commands" -- "$cur")); return ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts $common" -- "$cur"))
        return
    fi
    case $cmd in
        import|export|mount|umount|virtiofs) COMPREPLY=($(compgen -f -- "$cur")) ;;
        nar) [[ $cword -eq $((i + 1)) ]] && COMPREPLY=($(compgen -W "dump hash import" -- "$cur")) ||
                 COMPREPLY=($(compgen -f -- "$cur")) ;;
        cache) [[ $cword -eq $((i + 1)) ]] && COMPREPLY=($(compgen -W "serve" -- "$cur")) ||
                 { [[ $prev == --sign-key ]] && COMPREPLY=($(compgen -f -- "$cur")); } ;;
    esac
}
complete -F _castore castore
