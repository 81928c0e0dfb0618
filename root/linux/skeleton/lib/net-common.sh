# shellcheck shell=bash
# shellcheck disable=SC2034 # the names below are used by the scripts that source this file
# iptables helpers shared by root/linux/net.sh (global rules) and the
# container's net.sh (per-container rules).
#
# Everything warden puts into iptables is a chain named warden-*, a rule
# that jumps or goes to one, or a rule tagged with a comment warden-*; that
# is how teardown finds it all again.
#
# Changes are collected as iptables-restore commands in ipt_cmds_filter and
# ipt_cmds_nat and applied by ipt_apply with one iptables-restore --noflush
# (only the chains named in the input change). The kernel commits each
# table of the input as one transaction. The functions append to those
# variables instead of printing, so that no subshell is forked: scripts on
# the create/destroy path pay about 1 ms for each.

# Chain names.
forward_chain=warden-forward          # filter: traffic from containers (-i w-+)
forward_in_chain=warden-forward-in    # filter: traffic to containers (-o w-+)
default_chain=warden-default          # filter: end of every container chain
prerouting_chain=warden-prerouting    # nat: jumps to the containers' DNAT chains
postrouting_chain=warden-postrouting  # nat: MASQUERADE of each pool

ipt_cmds_filter=
ipt_cmds_nat=

# ipt_add TABLE LINE...: queue restore commands for TABLE.
ipt_add() {
  local -n cmds=ipt_cmds_$1
  shift
  local line
  for line in "$@"; do
    cmds+=$line$'\n'
  done
}

# ipt_apply: run the queued commands (nothing when none are queued) and
# clear the queues. On failure the input is shown with line numbers, as
# iptables-restore only names the line.
ipt_apply() {
  local input=
  if [[ -n $ipt_cmds_filter ]]; then
    input+=$'*filter\n'$ipt_cmds_filter$'COMMIT\n'
  fi
  if [[ -n $ipt_cmds_nat ]]; then
    input+=$'*nat\n'$ipt_cmds_nat$'COMMIT\n'
  fi
  ipt_cmds_filter=
  ipt_cmds_nat=
  if [[ -z $input ]]; then
    return 0
  fi
  if ! iptables-restore --noflush -w <<<"$input"; then
    echo "iptables-restore failed on this input:" >&2
    local n=0 line
    while IFS= read -r line; do
      n=$((n + 1))
      printf '%4d  %s\n' "$n" "$line" >&2
    done <<<"$input"
    return 1
  fi
}

# ipt_load: list the tables once (one iptables-save). Fills, for T in
# filter and nat:
#   ipt_rules_T   array of the rules as "-A CHAIN ..." lines, in order
#   ipt_chains_T  array of the chain names (built-in and user-defined)
ipt_load() {
  local line table=
  ipt_rules_filter=()
  ipt_rules_nat=()
  ipt_chains_filter=()
  ipt_chains_nat=()
  while IFS= read -r line; do
    case $line in
      \**)
        table=${line#\*}
        ;;
      :*)
        line=${line#:}
        case $table in
          filter) ipt_chains_filter+=("${line%% *}") ;;
          nat) ipt_chains_nat+=("${line%% *}") ;;
        esac
        ;;
      -A\ *)
        case $table in
          filter) ipt_rules_filter+=("$line") ;;
          nat) ipt_rules_nat+=("$line") ;;
        esac
        ;;
    esac
  done < <(iptables-save)
}

# ipt_has_chain TABLE CHAIN (after ipt_load)
ipt_has_chain() {
  local -n chains=ipt_chains_$1
  local name
  for name in "${chains[@]}"; do
    if [[ $name == "$2" ]]; then
      return 0
    fi
  done
  return 1
}

# ipt_rules_of TABLE CHAIN: set the array REPLY_RULES to the rules of CHAIN
# (after ipt_load), as "-A CHAIN ..." lines. REPLY_RULES is the array form of
# the REPLY convention (lib/common.sh): a result left in a global, read right
# after the call, instead of printed into a subshell.
ipt_rules_of() {
  local -n rules=ipt_rules_$1
  local rule
  REPLY_RULES=()
  for rule in "${rules[@]}"; do
    if [[ $rule == "-A $2 "* ]]; then
      REPLY_RULES+=("$rule")
    fi
  done
}

# ipt_purge TABLE CHAIN_REGEX [COMMENT_REGEX]: queue the removal (after
# ipt_load) of the chains whose names match CHAIN_REGEX (a bash ERE), of
# every rule elsewhere that jumps or goes to one of them, and of every rule
# whose comment matches COMMENT_REGEX. Queues nothing when nothing matches.
ipt_purge() {
  local table=$1 chain_re=$2 comment_re=${3:-} rule chain target name
  local -n rules=ipt_rules_$table
  local -n chains=ipt_chains_$table
  local -a doomed=()
  for name in "${chains[@]}"; do
    if [[ $name =~ $chain_re ]]; then
      doomed+=("$name")
    fi
  done
  for rule in "${rules[@]}"; do
    chain=${rule#-A }
    chain=${chain%% *}
    if [[ $chain =~ $chain_re ]]; then
      continue # goes away with its chain
    fi
    target=
    if [[ $rule =~ \ -[jg]\ ([^ ]+) ]]; then
      target=${BASH_REMATCH[1]}
    fi
    if [[ $target =~ $chain_re ]] ||
      [[ -n $comment_re && $rule =~ \ --comment\ \"?($comment_re) ]]; then
      ipt_add "$table" "-D${rule#-A}"
    fi
  done
  # Flush them all before deleting any: they may refer to each other.
  for name in "${doomed[@]}"; do
    ipt_add "$table" "-F $name"
  done
  for name in "${doomed[@]}"; do
    ipt_add "$table" "-X $name"
  done
}

# ipt_ensure_rules TABLE CHAIN OWNED_REGEX WHERE RULE...: make RULE...
# (given without "-A CHAIN ") the only rules of CHAIN that match OWNED_REGEX
# (which must match each of them as "-A CHAIN RULE"), one after the other
# in that order, and
#   WHERE=first        the first rules of CHAIN
#   WHERE=after-first  anywhere after CHAIN's first rule.
# Queues nothing when that is so already; otherwise the owned rules are
# deleted and RULE... inserted at position 1 (first) or 2 (after-first).
# After ipt_load.
ipt_ensure_rules() {
  local table=$1 chain=$2 owned_re=$3 where=$4 rule i start=-1 good=1
  shift 4
  local -a wanted=("$@") owned=()
  ipt_rules_of "$table" "$chain"
  for i in "${!REPLY_RULES[@]}"; do
    if [[ ${REPLY_RULES[i]} =~ $owned_re ]]; then
      owned+=("$i")
    fi
  done
  if ((${#owned[@]} != ${#wanted[@]})); then
    good=0
  elif ((${#owned[@]} > 0)); then
    start=${owned[0]}
    if [[ $where == first ]] && ((start != 0)); then
      good=0
    elif [[ $where == after-first ]] && ((start == 0)); then
      good=0
    fi
    for i in "${!wanted[@]}"; do
      if ((owned[i] != start + i)) ||
        [[ ${REPLY_RULES[owned[i]]} != "-A $chain ${wanted[i]}" ]]; then
        good=0
      fi
    done
  fi
  if ((good)); then
    return 0
  fi
  for i in "${owned[@]}"; do
    rule=${REPLY_RULES[i]}
    ipt_add "$table" "-D${rule#-A}"
  done
  local pos=1
  if [[ $where == after-first ]]; then
    pos=2
  fi
  for rule in "${wanted[@]}"; do
    ipt_add "$table" "-I $chain $pos $rule"
    pos=$((pos + 1))
  done
}

# ipt_ensure_chain TABLE CHAIN RULE...: make CHAIN exist and hold exactly
# RULE... (given without "-A CHAIN "). Queues nothing when it does already.
# After ipt_load.
ipt_ensure_chain() {
  local table=$1 chain=$2 rule i=0
  shift 2
  if ipt_has_chain "$table" "$chain"; then
    ipt_rules_of "$table" "$chain"
    if ((${#REPLY_RULES[@]} == $#)); then
      local same=1
      for rule in "$@"; do
        if [[ ${REPLY_RULES[i]} != "-A $chain $rule" ]]; then
          same=0
          break
        fi
        i=$((i + 1))
      done
      if ((same)); then
        return 0
      fi
    fi
  fi
  # Declaring a chain creates it, or flushes it when it exists.
  ipt_add "$table" ":$chain - [0:0]"
  for rule in "$@"; do
    ipt_add "$table" "-A $chain $rule"
  done
}

# ipv4_cidr VALUE: true if VALUE is a.b.c.d or a.b.c.d/n. Sets REPLY to
# the form iptables prints: "a.b.c.d/n" with the host bits cleared, /32
# for a plain address.
ipv4_cidr() {
  local addr=${1%/*} prefix=32 octet
  if [[ $1 == */* ]]; then
    prefix=${1#*/}
  fi
  [[ $prefix =~ ^[0-9]{1,2}$ ]] && ((10#$prefix <= 32)) || return 1
  [[ $addr =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ ]] || return 1
  local n=0
  for octet in "${BASH_REMATCH[@]:1}"; do
    ((10#$octet <= 255)) || return 1
    n=$((n << 8 | 10#$octet))
  done
  prefix=$((10#$prefix))
  n=$((n & (0xffffffff << (32 - prefix)) & 0xffffffff))
  REPLY=$((n >> 24 & 255)).$((n >> 16 & 255)).$((n >> 8 & 255)).$((n & 255))/$prefix
}

# ipv4_addr VALUE: true if VALUE is a dotted IPv4 address.
ipv4_addr() {
  [[ $1 != */* ]] && ipv4_cidr "$1"
}
