# bash completion for dockscaler: commands, their options, and service names
# (from the running daemon, through `dockscaler status -q`). The commands and
# each command's options are read from the program's own --help, so they never
# fall behind it; only option values are listed here.
# Installed to share/bash-completion/completions/dockscaler by cmake --install.

# The commands `dockscaler --help` lists.
_dockscaler_commands() {
  dockscaler --help 2>/dev/null | awk '/^Commands:/ { on = 1; next } /^$/ { on = 0 } on { print $1 }'
}

# The long options `dockscaler COMMAND --help` lists (words, not their values).
_dockscaler_options() {
  dockscaler "$1" --help 2>/dev/null | grep -oE -- '(^|[[ ])--[a-z][a-z-]*' | sed 's/^[[ ]*//' | sort -u
}

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
      COMPREPLY=($(compgen -W "$(_dockscaler_commands)" -- "$cur"))
    fi
    return
  fi
  if [[ $cmd == help ]]; then
    COMPREPLY=($(compgen -W "$(_dockscaler_commands)" -- "$cur"))
    return
  fi
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$(_dockscaler_options "$cmd")" -- "$cur"))
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
