# shellcheck shell=bash
# shellcheck disable=SC2154 # $id is common.sh's
# The container's network interfaces, named by its id:
#   w-<id>-0  host side of the veth pair (network_host_ip/prefix)
#   w-<id>-1  container side, moved into the container's netns
#   w-<id>-2  the ifb that shapes the container's egress (net_rate.sh)
# w-<11 chars>-N is 15 characters, the longest name the kernel accepts.
#
# Needs common.sh ($id).

# iface_names: host_iface, container_iface and ifb_iface for $id. A function
# may declare them local first (remove_interfaces does, for clear.sh's loop
# over ids).
iface_names() {
  host_iface=w-$id-0
  container_iface=w-$id-1
  # shellcheck disable=SC2034 # read by the scripts that source this file
  ifb_iface=w-$id-2
}

# netmask_to_prefix 255.255.255.252: sets network_prefix=30.
netmask_to_prefix() {
  local a b c d octet bits=0
  IFS=. read -r a b c d <<<"$1"
  for octet in "$a" "$b" "$c" "$d"; do
    case $octet in
      255) bits=$((bits + 8)) ;;
      254) bits=$((bits + 7)) ;;
      252) bits=$((bits + 6)) ;;
      248) bits=$((bits + 5)) ;;
      240) bits=$((bits + 4)) ;;
      224) bits=$((bits + 3)) ;;
      192) bits=$((bits + 2)) ;;
      128) bits=$((bits + 1)) ;;
      0) ;;
      *)
        echo "invalid netmask: $1" >&2
        return 1
        ;;
    esac
  done
  # shellcheck disable=SC2034 # read by the scripts that source this file
  network_prefix=$bits
}

# remove_interfaces: delete the container's host-side interfaces (the ifb
# and the veth; deleting one end of a veth takes the other) if they still
# exist. Returns 1, naming it, if one stays.
remove_interfaces() {
  # shellcheck disable=SC2034 # container_iface: set by iface_names, kept local
  local host_iface container_iface ifb_iface name cmds=
  iface_names
  for name in "$ifb_iface" "$host_iface"; do
    if [[ -e /sys/class/net/$name ]]; then
      cmds+="link del $name"$'\n'
    fi
  done
  if [[ -n $cmds ]]; then
    # -force: carry on if one of them vanished meanwhile (the veth goes
    # away by itself once the container's network namespace is gone).
    ip -force -batch - <<<"$cmds" 2>/dev/null || true
  fi
  for name in "$ifb_iface" "$host_iface"; do
    if [[ -e /sys/class/net/$name ]]; then
      echo "failed to delete interface $name" >&2
      return 1
    fi
  done
}
