# shellcheck shell=bash
# shellcheck disable=SC2154 # $id, $allow_nested_warden, $container_pids_limit are common.sh's
# The container's cgroups. This is the only file that builds their paths;
# the scripts ask it for a group, a control file, the processes or the ids
# it finds. (Python reads the statistics itself, from the same paths:
# warden/container/linux/cgroups.py.) Two drivers, behind the same
# functions:
#
#   v1 (also the "hybrid" layout: v1 controllers beside a cgroup2 at
#   <root>/unified, which warden does not use): one hierarchy per
#   subsystem, the container in <root>/<subsystem>/warden/instance-<id>.
#
#   v2 (the unified hierarchy mounted at <root>): one group,
#   <base>/instance-<id>, for every controller. root/linux/setup.sh chooses
#   <base> (cgroup_setup below) and enables the controllers down to it.
#
# Which one is in the depot's record <depot>/.cgroup-layout, written by
# root/linux/setup.sh: the lines "layout=v1|hybrid|v2" and, on v2,
# "base=<dir>". No record means v1, or on a cgroup2 root v2 with the base
# <root>/warden (what setup.sh picks without delegation). A container script (cwd = its dir,
# whose parent is the depot) reads it when this file is sourced; the root
# scripts call cgroup_load_layout DEPOT.
#
# Needs common.sh ($id, $allow_nested_warden, $container_pids_limit).
# Sourced by the root setup.sh and clear.sh too, with cwd /.

cgroup_root=${WARDEN_CGROUP_ROOT:-/sys/fs/cgroup}
cgroup_layout_name=.cgroup-layout
# v1: must be mounted; setup.sh and start fail without them.
cgroup_required_subsystems=(cpu cpuacct cpuset memory devices)
# v1: used when mounted.
cgroup_optional_subsystems=(pids freezer)
# v2: enabled in cgroup.subtree_control down to the instance groups.
cgroup_v2_required_controllers=(cpu memory pids)
# v2: enabled when the kernel has them (in the parent's cgroup.controllers).
cgroup_v2_optional_controllers=(io cpuset)
# The helper that puts the devices whitelist on a v2 group (src/devices;
# invoke build copies it into the skeleton's bin/).
cgroup_devices_helper=bin/devices-bpf

cgroup_layout=v1
cgroup_base=
cgroup_mounted=()

# cgroup_load_layout DEPOT: cgroup_layout (v1, hybrid or v2) and, on v2,
# cgroup_base from DEPOT's record. Without a record: v1.
cgroup_load_layout() {
  local key value
  cgroup_layout=v1
  cgroup_base=
  if [[ ! -f $1/$cgroup_layout_name ]]; then
    # No record (a depot setup.sh has not seen): v1, unless the root is
    # a cgroup2 mount; then setup.sh's choice without delegation.
    if [[ -f $cgroup_root/cgroup.controllers ]]; then
      cgroup_layout=v2
      cgroup_base=$cgroup_root/warden
    fi
    return 0
  fi
  while IFS='=' read -r key value; do
    case $key in
      layout) cgroup_layout=$value ;;
      base) cgroup_base=$value ;;
    esac
  done <"$1/$cgroup_layout_name"
  if [[ $cgroup_layout == v2 && -z $cgroup_base ]]; then
    cgroup_base=$cgroup_root/warden
  fi
}

if [[ -f etc/config && -f lib/common.sh ]]; then
  cgroup_load_layout "${PWD%/*}"
fi

# cgroup_check_mounted: true if every required v1 subsystem is mounted (has
# a cgroup.procs at its root); else false, with the array cgroup_missing
# holding the missing ones.
cgroup_check_mounted() {
  local s
  cgroup_missing=()
  for s in "${cgroup_required_subsystems[@]}"; do
    if [[ ! -f $cgroup_root/$s/cgroup.procs ]]; then
      cgroup_missing+=("$s")
    fi
  done
  ((${#cgroup_missing[@]} == 0))
}

# cgroup_check_ready: true if the container's groups can be made. v1: the
# required subsystems are mounted; v2: the base group is there with the
# required controllers enabled for its children. A base that is gone (the
# clear.sh of another depot removed it while it was empty) is made again,
# as v1's mkdir -p makes the <subsystem>/warden groups again. Else false
# with the reason in cgroup_error.
cgroup_check_ready() {
  local line c
  if [[ $cgroup_layout != v2 ]]; then
    if cgroup_check_mounted; then
      return 0
    fi
    cgroup_error="cgroup subsystem ${cgroup_missing[0]} is not mounted at $cgroup_root/${cgroup_missing[0]}"
    return 1
  fi
  if [[ ! -d $cgroup_base && -f ${cgroup_base%/*}/cgroup.subtree_control ]]; then
    mkdir "$cgroup_base" 2>/dev/null || true
    cgroup_v2_enable "$cgroup_base" 2>/dev/null || true
  fi
  line=
  if ! read -r line 2>/dev/null <"$cgroup_base/cgroup.subtree_control"; then
    cgroup_error="no cgroup v2 group $cgroup_base (root/linux/setup.sh makes it)"
    return 1
  fi
  for c in "${cgroup_v2_required_controllers[@]}"; do
    if [[ " $line " != *" $c "* ]]; then
      cgroup_error="the $c controller is not enabled in $cgroup_base/cgroup.subtree_control (root/linux/setup.sh enables it)"
      return 1
    fi
  done
}

# find_cgroup_subsystems: the array cgroup_mounted = the mounted required
# and optional v1 subsystems (empty on v2, which has one group). The v1
# code below loops over it: call this first.
find_cgroup_subsystems() {
  local s
  cgroup_mounted=()
  if [[ $cgroup_layout == v2 ]]; then
    return 0
  fi
  for s in "${cgroup_required_subsystems[@]}" "${cgroup_optional_subsystems[@]}"; do
    if [[ -d $cgroup_root/$s ]]; then
      cgroup_mounted+=("$s")
    fi
  done
}

# cgroup_dir SUBSYSTEM [ID]: REPLY = the container's group in that
# hierarchy (of container ID, default $id). On v2 every subsystem is the
# same group.
cgroup_dir() {
  if [[ $cgroup_layout == v2 ]]; then
    REPLY=$cgroup_base/instance-${2:-$id}
  else
    REPLY=$cgroup_root/$1/warden/instance-${2:-$id}
  fi
}

# cgroup_group SUBSYSTEM FILE: REPLY = the container's group in SUBSYSTEM,
# which must hold the control file FILE. Without it (the container is not
# running, or never started) returns 1 with the reason in cgroup_error.
cgroup_group() {
  cgroup_dir "$1"
  if [[ -f $REPLY/$2 ]]; then
    return 0
  fi
  # shellcheck disable=SC2034 # read by the scripts that source this file
  cgroup_error="no $1 cgroup $REPLY (is the container running?)"
  return 1
}

# cgroup_write FILE VALUE: write VALUE to a cgroup control file. On failure
# returns 1 with the kernel's reason (e.g. "Device or resource busy") in
# cgroup_error.
cgroup_write() {
  local out
  if out=$({ printf '%s\n' "$2" >"$1"; } 2>&1); then
    return 0
  fi
  # bash says "<script>: line N: printf: write error: <reason>" or
  # "<script>: line N: <file>: <reason>"; keep the reason.
  # shellcheck disable=SC2034 # read by the scripts that source this file
  cgroup_error=${out##*: }
  return 1
}

# cgroup_fill_cpuset PARENT CHILD: a v1 cpuset group takes tasks only once
# it has cpus and mems; empty values are copied from the parent.
cgroup_fill_cpuset() {
  local f value
  for f in cpuset.cpus cpuset.mems; do
    value=
    read -r value <"$2/$f" || true
    if [[ -z $value ]]; then
      read -r value <"$1/$f" || true
      printf '%s\n' "$value" >"$2/$f"
    fi
  done
}

# --- host setup (root setup.sh and clear.sh) -----------------------------------

# cgroup_detect_layout: REPLY = the layout of $cgroup_root: v2 when it is a
# cgroup2 mount; hybrid when the v1 subsystems are mounted and a cgroup2 is
# at <root>/unified; else v1 (which needs the v1 subsystems).
cgroup_detect_layout() {
  local fs
  fs=$(stat -f -c %T "$cgroup_root")
  if [[ $fs == cgroup2fs ]]; then
    REPLY=v2
  elif [[ -f $cgroup_root/unified/cgroup.controllers ]] && cgroup_check_mounted; then
    REPLY=hybrid
  else
    REPLY=v1
  fi
}

# cgroup_v2_enable DIR: enable the v2 controllers warden uses in
# DIR/cgroup.subtree_control, so that DIR's children get them. Those
# already on are left alone. A required one the kernel does not offer
# there, or a write the kernel refuses, returns 1 with cgroup_error naming
# the file and the reason.
cgroup_v2_enable() {
  local dir=$1 available='' enabled='' c
  read -r available <"$dir/cgroup.controllers" || true
  read -r enabled <"$dir/cgroup.subtree_control" || true
  for c in "${cgroup_v2_required_controllers[@]}" "${cgroup_v2_optional_controllers[@]}"; do
    if [[ " $enabled " == *" $c "* ]]; then
      continue
    fi
    if [[ " $available " != *" $c "* ]]; then
      if [[ " ${cgroup_v2_required_controllers[*]} " == *" $c "* ]]; then
        cgroup_error="the $c controller is not available in $dir (its cgroup.controllers has: ${available:-none})"
        return 1
      fi
      continue
    fi
    if ! cgroup_write "$dir/cgroup.subtree_control" "+$c"; then
      cgroup_error="cannot enable the $c controller in $dir/cgroup.subtree_control: $cgroup_error"
      return 1
    fi
  done
}

# cgroup_v2_own_group: REPLY = the cgroup v2 group this process is in
# (from /proc/self/cgroup's "0::" line), as a path below $cgroup_root.
cgroup_v2_own_group() {
  local line
  REPLY=
  while IFS= read -r line; do
    if [[ $line == 0::* ]]; then
      REPLY=${line#0::}
    fi
  done </proc/self/cgroup
}

# cgroup_v2_leave_group DIR: move every process of DIR into DIR/server, a
# leaf (v2 lets a group that gives controllers to its children hold no
# processes). Processes that exit meanwhile are skipped; new ones (forked
# while we move) are moved on the next round.
cgroup_v2_leave_group() {
  local dir=$1 pid round moved
  local -a pids
  [[ -d $dir/server ]] || mkdir "$dir/server"
  for ((round = 0; round < 100; round++)); do
    pids=()
    mapfile -t pids <"$dir/cgroup.procs"
    if ((${#pids[@]} == 0)); then
      return 0
    fi
    moved=0
    for pid in "${pids[@]}"; do
      if { printf '%s\n' "$pid" >"$dir/server/cgroup.procs"; } 2>/dev/null; then
        moved=$((moved + 1))
      elif [[ -d /proc/$pid ]]; then
        cgroup_write "$dir/server/cgroup.procs" "$pid" || true
        cgroup_error="cannot move process $pid from $dir into $dir/server/cgroup.procs: ${cgroup_error:-}"
        return 1
      fi
    done
  done
  cgroup_error="processes keep appearing in $dir/cgroup.procs; cannot empty it"
  return 1
}

# cgroup_v2_prepare: cgroup_base = warden's v2 group, made and with the
# controllers enabled down to it. Where, by WARDEN_CGROUP_DELEGATED:
#   1     the server runs in a group delegated to it (systemd's Delegate=yes;
#         setup.sh is the server's child, in the server's group): the base
#         is <group>/warden and the group's processes move into the leaf
#         <group>/server. A group called "server" already (a second
#         setup.sh under the same server, or systemd's DelegateSubgroup=
#         server) is that leaf: its parent is the delegated group.
#   auto  (config/warden.service) as 1 when the server is in such a leaf
#         already, else as unset. systemd before 254 has no
#         DelegateSubgroup=, starts the server in the unit's group itself,
#         and cannot start it there again while the containers below keep
#         controllers enabled in it (status 219/CGROUP): containers that
#         outlive a restart must then live outside the unit.
#   unset <root>/warden.
cgroup_v2_prepare() {
  local top=$cgroup_root mode=${WARDEN_CGROUP_DELEGATED:-}
  if [[ $mode == 1 || $mode == auto ]]; then
    cgroup_v2_own_group
    if [[ -z $REPLY || $REPLY == / ]]; then
      if [[ $mode == 1 ]]; then
        cgroup_error="WARDEN_CGROUP_DELEGATED=1, but this process is in the root cgroup: nothing is delegated"
        return 1
      fi
    elif [[ ${REPLY##*/} == server ]]; then
      top=$cgroup_root${REPLY%/*}
    elif [[ $mode == 1 ]]; then
      top=$cgroup_root$REPLY
      cgroup_v2_leave_group "$top" || return 1
    else
      echo "cgroup.sh: the server's group $cgroup_root$REPLY is not a server leaf (systemd before 254 ignores DelegateSubgroup=server), so containers go to $cgroup_root/warden, where they outlive a restart of the service" >&2
    fi
  fi
  cgroup_v2_enable "$top" || return 1
  cgroup_base=$top/warden
  if [[ ! -d $cgroup_base ]]; then
    mkdir "$cgroup_base"
  fi
  cgroup_v2_enable "$cgroup_base"
}

# cgroup_setup DEPOT: find the host's layout, prepare warden's parent groups
# on it (v1: <subsystem>/warden; v2: cgroup_v2_prepare) and record the
# layout in DEPOT/.cgroup-layout (written under another name, then renamed:
# a reader sees the old record or the new one). Idempotent. Returns 1 with
# cgroup_error on failure.
cgroup_setup() {
  local depot=$1 record
  cgroup_detect_layout
  cgroup_layout=$REPLY
  cgroup_base=
  if [[ $cgroup_layout == v2 ]]; then
    cgroup_v2_prepare || return 1
  else
    if ! cgroup_check_mounted; then
      cgroup_error="cgroup v1 hierarchies missing at $cgroup_root: ${cgroup_missing[*]}. Mount them (one per subsystem, at $cgroup_root/<subsystem>); warden uses them as they are."
      return 1
    fi
    find_cgroup_subsystems
    cgroup_create_parents
  fi
  record="layout=$cgroup_layout"$'\n'
  if [[ $cgroup_layout == v2 ]]; then
    record+="base=$cgroup_base"$'\n'
  fi
  printf '%s' "$record" >"$depot/$cgroup_layout_name.new"
  mv -f "$depot/$cgroup_layout_name.new" "$depot/$cgroup_layout_name"
}

# cgroup_create_parents: the v1 <subsystem>/warden groups. Idempotent.
cgroup_create_parents() {
  local s
  for s in "${cgroup_mounted[@]}"; do
    [[ -d $cgroup_root/$s/warden ]] || mkdir "$cgroup_root/$s/warden"
    if [[ $s == cpuset ]]; then
      cgroup_fill_cpuset "$cgroup_root/$s" "$cgroup_root/$s/warden"
    fi
  done
}

# cgroup_remove_parents: rmdir warden's parent groups that are empty (root
# clear.sh): v1 the <subsystem>/warden groups, v2 the base. Groups still in
# use stay. (A delegated group's server leaf holds the server: it stays.)
cgroup_remove_parents() {
  local s
  if [[ $cgroup_layout == v2 ]]; then
    if [[ -d $cgroup_base ]]; then
      rmdir "$cgroup_base" 2>/dev/null || true
    fi
    return 0
  fi
  for s in "${cgroup_mounted[@]}"; do
    if [[ -d $cgroup_root/$s/warden ]]; then
      rmdir "$cgroup_root/$s/warden" 2>/dev/null || true
    fi
  done
}

# --- one container ------------------------------------------------------------------

# cgroup_create_instance PID DEVICE_RULE...: create the container's group
# (v1: in every mounted subsystem, and the parents), and move PID into it.
# The container may open only the devices of the DEVICE_RULEs ("c 1:3 rw"),
# or every device when allow_nested_warden=true: v1 through the devices
# group, v2 through the devices-bpf program attached to the group. The
# group's pids.max is container_pids_limit, when that is set (not 0).
cgroup_create_instance() {
  local pid=$1 s rule dir
  local -a dirs=()
  shift
  if [[ $cgroup_layout == v2 ]]; then
    cgroup_dir unified
    dir=$REPLY
    [[ -d $dir ]] || mkdir "$dir"
    cgroup_set_pids_limit "$dir"
    if [[ $allow_nested_warden != true ]]; then
      # Before the init moves in: it must never run without the whitelist.
      if [[ ! -x $cgroup_devices_helper ]]; then
        echo "$cgroup_devices_helper is missing (invoke build copies it): without it the container could open every device" >&2
        return 1
      fi
      "$cgroup_devices_helper" attach "$dir" "$@"
    fi
    echo "$pid" >"$dir/cgroup.procs"
    return 0
  fi
  for s in "${cgroup_mounted[@]}"; do
    cgroup_dir "$s"
    dirs+=("$REPLY")
  done
  mkdir -p "${dirs[@]}"
  for s in "${cgroup_mounted[@]}"; do
    cgroup_dir "$s"
    case $s in
      cpuset)
        cgroup_fill_cpuset "$cgroup_root/$s" "$cgroup_root/$s/warden"
        cgroup_fill_cpuset "$cgroup_root/$s/warden" "$REPLY"
        ;;
      devices)
        if [[ $allow_nested_warden == true ]]; then
          echo a >"$REPLY/devices.allow"
        else
          echo a >"$REPLY/devices.deny"
          # The kernel takes one rule per write.
          for rule in "$@"; do
            echo "$rule" >"$REPLY/devices.allow"
          done
        fi
        ;;
      pids)
        cgroup_set_pids_limit "$REPLY"
        ;;
    esac
    echo "$pid" >"$REPLY/cgroup.procs"
  done
}

# cgroup_set_pids_limit DIR: DIR/pids.max = container_pids_limit, unless
# that is empty or 0 (no limit) or DIR has no pids controller.
cgroup_set_pids_limit() {
  local limit=${container_pids_limit:-}
  if [[ -n $limit && $limit != 0 && -f $1/pids.max ]]; then
    echo "$limit" >"$1/pids.max"
  fi
}

# cgroup_v2_collect_procs DIR: append the processes of DIR's nested groups
# (a nested warden's, say), at any depth, to container_pid_list.
cgroup_v2_collect_procs() {
  local sub
  local -a lines
  for sub in "$1"/*/; do
    if [[ -f ${sub}cgroup.procs ]]; then
      lines=()
      mapfile -t lines 2>/dev/null <"${sub}cgroup.procs" || true
      container_pid_list+=("${lines[@]}")
      cgroup_v2_collect_procs "${sub%/}"
    fi
  done
}

# cgroup_read_procs [--first]: the array container_pid_list = the
# processes (host pids) in the container's groups. v1: from the
# cgroup.procs of every mounted subsystem, so possibly repeated; with
# --first only from the first file that can be read (every group holds
# all of the container's processes). v2: the group's cgroup.procs and,
# without --first, those of the groups nested in it. Empty when no file
# can be read.
cgroup_read_procs() {
  local s
  local -a lines
  container_pid_list=()
  if [[ $cgroup_layout == v2 ]]; then
    cgroup_dir unified
    if mapfile -t container_pid_list 2>/dev/null <"$REPLY/cgroup.procs"; then
      if [[ ${1:-} != --first ]]; then
        cgroup_v2_collect_procs "$REPLY"
      fi
    else
      container_pid_list=()
    fi
    return 0
  fi
  for s in "${cgroup_mounted[@]}"; do
    cgroup_dir "$s"
    if [[ ! -r $REPLY/cgroup.procs ]]; then
      continue
    fi
    if [[ ${1:-} == --first ]]; then
      if mapfile -t container_pid_list 2>/dev/null <"$REPLY/cgroup.procs"; then
        return 0
      fi
      container_pid_list=()
    else
      lines=()
      mapfile -t lines 2>/dev/null <"$REPLY/cgroup.procs" || true
      container_pid_list+=("${lines[@]}")
    fi
  done
}

# cgroup_kill_all: v2 with cgroup.kill (Linux 5.14+): SIGKILL every process
# of the container's group and of the groups nested in it, in one write.
# Elsewhere nothing (the caller kills what cgroup_read_procs finds).
cgroup_kill_all() {
  if [[ $cgroup_layout == v2 ]]; then
    cgroup_dir unified
    if [[ -f $REPLY/cgroup.kill ]]; then
      echo 1 >"$REPLY/cgroup.kill" 2>/dev/null || true
    fi
  fi
}

# cgroup_remove_instance: remove the container's groups (and any nested in
# them). Returns 1, naming what is left, if any group stays.
cgroup_remove_instance() {
  local s dir failed=0 try
  local -a dirs=()
  if [[ $cgroup_layout == v2 ]]; then
    cgroup_dir unified
    if [[ -d $REPLY ]]; then
      dirs+=("$REPLY")
    fi
  fi
  for s in "${cgroup_mounted[@]}"; do
    cgroup_dir "$s"
    if [[ -d $REPLY ]]; then
      dirs+=("$REPLY")
    fi
  done
  if ((${#dirs[@]} == 0)); then
    return 0
  fi
  if ! rmdir -- "${dirs[@]}" 2>/dev/null; then
    # Nested groups first (a nested warden may have made some). A group
    # whose last process has just died can stay busy a moment longer.
    for ((try = 0; try < 50; try++)); do
      find "${dirs[@]}" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null || true
      rmdir -- "${dirs[@]}" 2>/dev/null || true
      for dir in "${dirs[@]}"; do
        if [[ -d $dir ]]; then
          sleep 0.02
          continue 2
        fi
      done
      break
    done
  fi
  for dir in "${dirs[@]}"; do
    if [[ -d $dir ]]; then
      echo "failed to remove $dir" >&2
      failed=1
    fi
  done
  return "$failed"
}

# cgroup_instance_ids: the array cgroup_ids = the ids of every container
# that has a group (root clear.sh; possibly repeated). v1: in any
# hierarchy; v2: below the base.
cgroup_instance_ids() {
  local dir
  local -a dirs
  cgroup_ids=()
  if [[ $cgroup_layout == v2 ]]; then
    dirs=("$cgroup_base"/instance-*)
  else
    dirs=("$cgroup_root"/*/warden/instance-*)
  fi
  for dir in "${dirs[@]}"; do
    if [[ -d $dir ]]; then
      cgroup_ids+=("${dir##*/instance-}")
    fi
  done
}

# cgroup_has_processes ID: true if a process lives in container ID's groups
# (v2: or in a group nested in it).
cgroup_has_processes() {
  local procs pid key value
  if [[ $cgroup_layout == v2 ]]; then
    cgroup_dir unified "$1"
    while read -r key value; do
      if [[ $key == populated ]]; then
        [[ $value == 1 ]]
        return
      fi
    done 2>/dev/null <"$REPLY/cgroup.events"
    return 1
  fi
  for procs in "$cgroup_root"/*/warden/instance-"$1"/cgroup.procs; do
    # cgroup files report size 0: read them.
    if read -r pid <"$procs" 2>/dev/null && [[ -n $pid ]]; then
      return 0
    fi
  done
  return 1
}
