# bash completion for dockscaler: commands, their options, and service names
# (from the running daemon, through `dockscaler status -q`).
# Installed to share/bash-completion/completions/dockscaler by cmake --install.

_dockscaler_services() {
  local admin=()
  [[ -n ${_dockscaler_admin:-} ]] && admin=(--admin "$_dockscaler_admin")
  dockscaler "${admin[@]}" status -q 2>/dev/null
}

_dockscaler() {
  local cur prev cmd i
  COMPREPLY=()
  cur=${COMP_WORDS[COMP_CWORD]}
  prev=""
  ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
  local commands="autoscale help invoke logs ps reload scale serve status validate version"
  local globals="--admin --log-level --log-format --help --version"

  # The command: the first word that is not an option or an option's value.
  cmd=""
  _dockscaler_admin=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    case ${COMP_WORDS[i]} in
      --admin) _dockscaler_admin=${COMP_WORDS[i + 1]}; ((i++)) ;;
      --log-level | --log-format) ((i++)) ;;
      -*) ;;
      *) [[ -z $cmd ]] && cmd=${COMP_WORDS[i]} ;;
    esac
  done

  case $prev in
    --log-level) COMPREPLY=($(compgen -W "trace debug info warn error" -- "$cur")); return ;;
    --log-format) COMPREPLY=($(compgen -W "text json" -- "$cur")); return ;;
    -o | --output)
      [[ $cmd == version ]] && COMPREPLY=($(compgen -W "text json" -- "$cur")) ||
        COMPREPLY=($(compgen -W "table json" -- "$cur"))
      return ;;
    -c | --config | -d | --data) COMPREPLY=($(compgen -f -- "${cur#@}")); return ;;
    -X | --request) COMPREPLY=($(compgen -W "GET POST PUT PATCH DELETE HEAD OPTIONS" -- "$cur")); return ;;
    --admin | -H | --header | --path | --hold | --tail | --format | --timeout) return ;;
  esac

  if [[ -z $cmd ]]; then
    if [[ $cur == -* ]]; then
      COMPREPLY=($(compgen -W "$globals" -- "$cur"))
    else
      COMPREPLY=($(compgen -W "$commands" -- "$cur"))
    fi
    return
  fi

  local opts="--help --admin"
  case $cmd in
    serve) opts+=" --config --stop-containers" ;;
    validate) opts+=" --config" ;;
    version) opts+=" --output" ;;
    status | ps) opts+=" --output --quiet --format" ;;
    scale) opts+=" --hold --direct --config" ;;
    logs) opts+=" --follow --tail --timestamps" ;;
    invoke) opts+=" --data --request --header --path --include --verbose --insecure --timeout" ;;
    help) COMPREPLY=($(compgen -W "$commands" -- "$cur")); return ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    return
  fi
  case $cmd in
    status | ps | logs | invoke | autoscale)
      if [[ $cmd == autoscale && $prev != autoscale ]]; then
        COMPREPLY=($(compgen -W "on off" -- "$cur"))
      else
        COMPREPLY=($(compgen -W "$(_dockscaler_services)" -- "$cur"))
      fi ;;
    scale)
      compopt -o nospace 2>/dev/null
      COMPREPLY=($(compgen -W "$(_dockscaler_services | sed 's/$/=/')" -- "$cur")) ;;
  esac
}

complete -F _dockscaler dockscaler
