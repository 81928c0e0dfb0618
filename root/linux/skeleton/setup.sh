#!/bin/bash
# Prepare a new container dir (run once, by root/linux/create.sh).
#
# Env: id, network_host_ip, network_container_ip, network_netmask,
# user_uid, rootfs_path, allow_nested_warden, container_iface_mtu,
# dns_servers (newline-separated, may be empty), container_pids_limit
# (empty or 0: no limit).
#
# Writes etc/config, creates the container's writable layer and fills it:
# hostname, hosts, resolv.conf and the vcap user and group. Nothing is
# mounted for that: the files go straight into the overlay's upper dir, as
# overlayfs itself would have written them (hook 1 mounts the overlay at
# start). Two rare cases need the container's merged root and take a slower
# path: a rootfs without warden's /dev (one not built by rootfs/setup.sh),
# and a rootfs that has a vcap user or group already (remapped with
# groupmod/usermod, its files re-owned). For them this script runs itself
# again as "setup.sh --mounted", in a private mount namespace with the
# overlay mounted at mnt (gone when it exits).
#
# create.sh sources this file rather than running it (one bash process
# less on the Create path), so it cds to its own dir and never exits on
# success.
set -euo pipefail
shopt -s nullglob
[[ -n "${DEBUG:-}" ]] && set -x
[[ ${BASH_SOURCE[0]} != */* ]] || cd "${BASH_SOURCE[0]%/*}"
# shellcheck source=lib/common.sh
source lib/common.sh
# shellcheck source=lib/fs.sh
source lib/fs.sh
# shellcheck source=lib/ifaces.sh
source lib/ifaces.sh
# shellcheck source=lib/dev.sh
source lib/dev.sh

# --- the slow path: in a private mount namespace, the overlay at mnt ----------
if [[ ${1:-} == --mounted ]]; then
  setup_fs
  root=$rootfs_mount_dir
  # /dev: a fixed set of nodes (pts, ptmx and shm come at start).
  if ! rootfs_has_dev "$rootfs_path"; then
    populate_dev "$root"
  fi
  # An existing vcap gets uid = gid = user_uid; its files are re-owned
  # (which copies them up: slow). A vcap group without a vcap user gets
  # the user here too.
  db_field "$root/etc/group" vcap 2
  old_gid=$REPLY
  db_field "$root/etc/passwd" vcap 2
  old_uid=$REPLY
  if [[ -n $old_gid || -n $old_uid ]]; then
    if [[ -z $old_gid ]]; then
      run_in_root "$root" groupadd -g "$user_uid" vcap
    elif [[ $old_gid != "$user_uid" ]]; then
      run_in_root "$root" groupmod -g "$user_uid" vcap
      run_in_root "$root" find / -xdev -gid "$old_gid" -exec chgrp -h "$user_uid" {} +
    fi
    if [[ -z $old_uid ]]; then
      run_in_root "$root" useradd -m -u "$user_uid" -g "$user_uid" -s /bin/bash vcap
    elif [[ $old_uid != "$user_uid" ]]; then
      run_in_root "$root" usermod -u "$user_uid" -g "$user_uid" vcap
      run_in_root "$root" find / -xdev -uid "$old_uid" -exec chown -h "$user_uid" {} +
    fi
  fi
  exit 0
fi

# --- writing into the upper dir -------------------------------------------------
# Never while the overlay is mounted: only before hook 1, or after the
# private namespace of the slow path is gone.

# copy_up PATH...: what overlayfs does before it first changes a file of
# the rootfs: copy PATH (relative to the rootfs; a dir without its
# contents) into the upper dir, with its owner, mode and times, unless the
# upper dir has it already. List the dirs before what is in them.
copy_up() {
  local path
  local -a todo=()
  for path in "$@"; do
    if [[ -e $rootfs_path/$path || -L $rootfs_path/$path ]] &&
      [[ ! -e $upper/$path && ! -L $upper/$path ]]; then
      todo+=("$path")
    fi
  done
  if ((${#todo[@]} > 0)); then
    tar -C "$rootfs_path" --no-recursion --numeric-owner -cf - "${todo[@]}" |
      tar -C "$upper" --numeric-owner -xpf -
  fi
}

# layer_file PATH: REPLY = the container's PATH (relative): in the upper
# dir if it is there, else in the rootfs.
layer_file() {
  REPLY=$upper/$1
  [[ -e $REPLY ]] || REPLY=$rootfs_path/$1
}

# write_file PATH TEXT: TEXT becomes the container's PATH (relative). A
# copied-up file keeps the owner and mode of the rootfs's; a new one gets
# 0644. A symlink there is replaced by a plain file, never followed (it
# would point into the host).
write_file() {
  if [[ -L $upper/$1 ]]; then
    rm -f "$upper/$1"
  fi
  printf '%s' "$2" >"$upper/$1"
}

# --- the vcap user --------------------------------------------------------------

# db_owner FILE ID: true if a line of the colon-separated FILE has ID as
# its third field (uid or gid); REPLY = that line's name.
db_owner() {
  local line rest
  local -a lines=()
  REPLY=
  mapfile -t lines <"$1"
  for line in "${lines[@]}"; do
    # name:password:ID:... (string operations: a regex per line is slow)
    rest=${line#*:}
    rest=${rest#*:}
    if [[ ${rest%%:*} == "$2" && $line == *:*:* ]]; then
      REPLY=${line%%:*}
      return 0
    fi
  done
  return 1
}

# read_login_defs: the array login_defs = the rootfs's login.defs, over
# the defaults useradd has for what it does not set.
read_login_defs() {
  local line key value
  local -a lines=()
  login_defs=([UMASK]=022 [UID_MIN]=1000 [UID_MAX]=60000 [SUB_UID_MIN]=100000
    [SUB_UID_MAX]=600100000 [SUB_UID_COUNT]=65536 [SUB_GID_MIN]=100000
    [SUB_GID_MAX]=600100000 [SUB_GID_COUNT]=65536)
  layer_file etc/login.defs
  if [[ -r $REPLY ]]; then
    mapfile -t lines <"$REPLY"
  fi
  for line in "${lines[@]}"; do
    # "KEY VALUE"; comments and blank lines do not start with a capital.
    if [[ $line == [A-Z]* ]]; then
      read -r key value _ <<<"$line"
      login_defs[$key]=$value
    fi
  done
}

# subordinate_range FILE MIN MAX COUNT: REPLY = the start of the lowest
# free range of COUNT ids in MIN..MAX in the subuid/subgid FILE (useradd's
# choice), or "" when there is none.
subordinate_range() {
  local min=$(($2)) max=$(($3)) count=$(($4)) low line start n i j
  local -a starts=() counts=()
  # The ranges of FILE ("name:start:count"), sorted by start.
  while IFS= read -r line || [[ -n $line ]]; do
    if [[ $line =~ ^[^:]*:([0-9]+):([0-9]+)$ ]]; then
      start=$((10#${BASH_REMATCH[1]}))
      n=$((10#${BASH_REMATCH[2]}))
      for ((i = ${#starts[@]}; i > 0 && starts[i - 1] > start; i--)); do
        starts[i]=${starts[i - 1]}
        counts[i]=${counts[i - 1]}
      done
      starts[i]=$start
      counts[i]=$n
    fi
  done <"$1"
  REPLY=
  low=$min
  for j in "${!starts[@]}"; do
    start=${starts[j]}
    if ((start > max + 1)); then
      start=$((max + 1))
    fi
    if ((start > low && start - low >= count)); then
      REPLY=$low
      return 0
    fi
    if ((low < starts[j] + counts[j])); then
      low=$((starts[j] + counts[j]))
    fi
  done
  if ((max - low + 1 >= count)); then
    REPLY=$low
  fi
}

# add_vcap: the vcap user and group, uid = gid = user_uid, as
# "useradd -m -U -u <user_uid> -s /bin/bash vcap" makes them with the
# rootfs's login.defs: lines in passwd, group, shadow, gshadow, subuid and
# subgid, and a home made from /etc/skel.
add_vcap() {
  local uid=$user_uid kind file count min max mode home
  layer_file etc/passwd
  if db_owner "$REPLY" "$uid"; then
    echo "setup.sh: uid $uid is taken in the rootfs by user $REPLY" >&2
    exit 1
  fi
  layer_file etc/group
  if db_owner "$REPLY" "$uid"; then
    echo "setup.sh: gid $uid is taken in the rootfs by group $REPLY" >&2
    exit 1
  fi
  declare -gA login_defs=()
  read_login_defs

  printf 'vcap:x:%s:%s::/home/vcap:/bin/bash\n' "$uid" "$uid" >>"$upper/etc/passwd"
  printf 'vcap:x:%s:\n' "$uid" >>"$upper/etc/group"
  if [[ -e $upper/etc/shadow ]]; then
    printf 'vcap:!:%s:%s:%s:%s:::\n' "$((EPOCHSECONDS / 86400))" \
      "${login_defs[PASS_MIN_DAYS]:-}" "${login_defs[PASS_MAX_DAYS]:-}" \
      "${login_defs[PASS_WARN_AGE]:-}" >>"$upper/etc/shadow"
  fi
  if [[ -e $upper/etc/gshadow ]]; then
    printf 'vcap:!::\n' >>"$upper/etc/gshadow"
  fi
  # Subordinate ids, for a uid in UID_MIN..UID_MAX.
  if ((uid >= login_defs[UID_MIN] && uid <= login_defs[UID_MAX])); then
    for kind in UID GID; do
      file=$upper/etc/sub${kind,,}
      count=SUB_${kind}_COUNT min=SUB_${kind}_MIN max=SUB_${kind}_MAX
      if [[ -e $file ]] && ((login_defs[$count] > 0)); then
        subordinate_range "$file" "${login_defs[$min]}" "${login_defs[$max]}" "${login_defs[$count]}"
        if [[ -n $REPLY ]]; then
          printf 'vcap:%s:%s\n' "$REPLY" "$((login_defs[$count]))" >>"$file"
        fi
      fi
    done
  fi

  # The home: a copy of /etc/skel owned by vcap, with HOME_MODE, else
  # 0777 & ~UMASK. A home that exists already is left alone.
  layer_file home/vcap
  if [[ ! -e $REPLY ]]; then
    home=$upper/home/vcap
    [[ -d $upper/home ]] || mkdir -p "$upper/home"
    layer_file etc/skel
    if [[ -d $REPLY ]]; then
      cp -a "$REPLY" "$home"
    else
      mkdir "$home"
    fi
    chown -R "$uid:$uid" "$home"
    printf -v mode '%o' "$((${login_defs[HOME_MODE]:-0777 & ~${login_defs[UMASK]}}))"
    chmod "$mode" "$home"
  fi
}

# --- the steps ------------------------------------------------------------------

require_params id network_host_ip network_container_ip user_uid rootfs_path
if [[ ! $id =~ ^[a-z0-9]{1,11}$ ]]; then
  echo "setup.sh: id must be 1-11 characters of [a-z0-9]: '$id'" >&2
  exit 1
fi
if [[ ! $user_uid =~ ^[1-9][0-9]*$ ]]; then
  echo "setup.sh: user_uid must be a positive number: '$user_uid'" >&2
  exit 1
fi
if [[ -n $container_pids_limit && ! $container_pids_limit =~ ^[0-9]{1,10}$ ]]; then
  echo "setup.sh: container_pids_limit must be a number: '$container_pids_limit'" >&2
  exit 1
fi
if [[ ! -d $rootfs_path/etc ]]; then
  echo "setup.sh: rootfs_path $rootfs_path is not a root filesystem" >&2
  exit 1
fi
if [[ $rootfs_path != /* || -L $rootfs_path ]]; then
  rootfs_path=$(readlink -f "$rootfs_path")
fi
netmask_to_prefix "$network_netmask"

# 1. etc/config: everything later scripts and hooks need, including where
#    the writable layer lives (a subvolume of the depot's disk pool when
#    there is one). Written before anything is made outside this dir, so
#    that destroy.sh finds it all.
mkdir -p etc run "$rootfs_mount_dir"
writable_layer_choose
{
  printf '# written by setup.sh; sourced by lib/common.sh\n'
  for key in id network_netmask network_host_ip network_container_ip user_uid \
    rootfs_path allow_nested_warden container_iface_mtu dns_servers container_pids_limit \
    writable_layer_dir jobs_dir; do
    printf '%s=%q\n' "$key" "${!key}"
  done
  iface_names
  printf 'network_host_iface=%q\n' "$host_iface"
  printf 'network_container_iface=%q\n' "$container_iface"
  printf 'network_ifb_iface=%q\n' "$ifb_iface"
} >etc/config

# 2. The writable layer: the subvolume (or tmp/) with the overlay's upper
#    and work dirs; and where job directories go.
writable_layer_prepare
jobs_dir_prepare
upper=$overlay_upper_dir
[[ $upper == /* ]] || upper=$PWD/$upper

# 3. The rare cases (see the header), with the overlay mounted.
db_field "$rootfs_path/etc/group" vcap 2
vcap_in_rootfs=$REPLY
db_field "$rootfs_path/etc/passwd" vcap 2
vcap_in_rootfs+=$REPLY
if [[ -n $vcap_in_rootfs ]] || ! rootfs_has_dev "$rootfs_path"; then
  # util-linux unshare makes the new mount namespace private (recursively).
  unshare --mount --propagation private "$PWD/setup.sh" --mounted
fi

# 4. Names: copied up first, as the user files (step 5) are, so that they
#    keep the rootfs's owner and mode (one tar for all of them).
copy_up etc etc/hostname etc/hosts etc/passwd etc/group etc/shadow etc/gshadow \
  etc/subuid etc/subgid home
write_file etc/hostname "$id"$'\n'
write_file etc/hosts "127.0.0.1 localhost"$'\n'"$network_container_ip $id"$'\n'

resolv=()
resolv_conf=
if [[ -r /etc/resolv.conf ]]; then
  mapfile -t resolv </etc/resolv.conf
fi
if [[ -n ${dns_servers//[[:space:]]/} ]]; then
  for server in $dns_servers; do
    resolv_conf+="nameserver $server"$'\n'
  done
elif ((${#resolv[@]} == 1)) && [[ ${resolv[0]} == "nameserver 127.0.0.1" ]]; then
  # A resolver on the host's loopback is reachable at the host's end.
  resolv_conf="nameserver $network_host_ip"$'\n'
elif ((${#resolv[@]} > 0)); then
  printf -v resolv_conf '%s\n' "${resolv[@]}"
fi
# Not copied up: a new file, whatever the rootfs has there (often a symlink).
write_file etc/resolv.conf "$resolv_conf"

# 5. The vcap user and group (a vcap of the rootfs was remapped in step 3).
if [[ -z $vcap_in_rootfs ]]; then
  add_vcap
fi
