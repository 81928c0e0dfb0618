# shellcheck shell=bash
# shellcheck disable=SC2154 # $id and $allow_nested_warden are common.sh's
# The container's cgroups (v1): every container lives in
# $cgroup_root/<subsystem>/warden/instance-<id>. This is the only file that
# builds those paths; the scripts ask it for a group, a control file, the
# processes or the ids it finds. (Python reads the statistics itself, from
# the same paths.)
#
# Needs common.sh ($id, $allow_nested_warden). Sourced by the root setup.sh
# and clear.sh too, with cwd /.

cgroup_root=${WARDEN_CGROUP_ROOT:-/sys/fs/cgroup}
# Must be mounted; setup.sh and start fail without them.
cgroup_required_subsystems=(cpu cpuacct cpuset memory devices)
# Used when mounted.
cgroup_optional_subsystems=(pids freezer)

# cgroup_check_mounted: true if every required subsystem is mounted (has a
# cgroup.procs at its root); else false, with the array cgroup_missing
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

# find_cgroup_subsystems: the array cgroup_mounted = the mounted required
# and optional subsystems. The functions below that loop over subsystems
# read it: call this first.
find_cgroup_subsystems() {
  local s
  cgroup_mounted=()
  for s in "${cgroup_required_subsystems[@]}" "${cgroup_optional_subsystems[@]}"; do
    if [[ -d $cgroup_root/$s ]]; then
      cgroup_mounted+=("$s")
    fi
  done
}

# cgroup_dir SUBSYSTEM [ID]: REPLY = the container's group in that
# hierarchy (of container ID, default $id).
cgroup_dir() {
  REPLY=$cgroup_root/$1/warden/instance-${2:-$id}
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

# cgroup_fill_cpuset PARENT CHILD: a cpuset group takes tasks only once it
# has cpus and mems; empty values are copied from the parent.
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

# cgroup_create_parents: the <subsystem>/warden groups (root setup.sh).
# Idempotent.
cgroup_create_parents() {
  local s
  for s in "${cgroup_mounted[@]}"; do
    [[ -d $cgroup_root/$s/warden ]] || mkdir "$cgroup_root/$s/warden"
    if [[ $s == cpuset ]]; then
      cgroup_fill_cpuset "$cgroup_root/$s" "$cgroup_root/$s/warden"
    fi
  done
}

# cgroup_remove_parents: rmdir the <subsystem>/warden groups that are empty
# (root clear.sh); groups still in use stay.
cgroup_remove_parents() {
  local s
  for s in "${cgroup_mounted[@]}"; do
    if [[ -d $cgroup_root/$s/warden ]]; then
      rmdir "$cgroup_root/$s/warden" 2>/dev/null || true
    fi
  done
}

# cgroup_create_instance PID DEVICE_RULE...: create the container's group
# in every mounted subsystem (and the parents), and move PID into each.
# The devices group denies everything but the DEVICE_RULEs ("c 1:3 rw"),
# or allows everything when allow_nested_warden=true.
cgroup_create_instance() {
  local pid=$1 s rule
  local -a dirs=()
  shift
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
    esac
    echo "$pid" >"$REPLY/cgroup.procs"
  done
}

# cgroup_read_procs [--first]: the array container_pid_list = the
# processes (host pids) in the container's groups, from the cgroup.procs of
# every mounted subsystem, so possibly repeated. With --first only from the
# first file that can be read (every group holds all of the container's
# processes). Empty when no file can be read.
cgroup_read_procs() {
  local s
  local -a lines
  container_pid_list=()
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

# cgroup_remove_instance: remove the container's groups (and any nested in
# them). Returns 1, naming what is left, if any group stays.
cgroup_remove_instance() {
  local s dir failed=0
  local -a dirs=()
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
    # Nested groups first (a nested warden may have made some).
    find "${dirs[@]}" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null || true
    rmdir -- "${dirs[@]}" 2>/dev/null || true
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
# that has a group in any hierarchy (root clear.sh; possibly repeated).
cgroup_instance_ids() {
  local dir
  cgroup_ids=()
  for dir in "$cgroup_root"/*/warden/instance-*; do
    if [[ -d $dir ]]; then
      cgroup_ids+=("${dir##*/instance-}")
    fi
  done
}

# cgroup_has_processes ID: true if a process lives in container ID's groups.
cgroup_has_processes() {
  local procs pid
  for procs in "$cgroup_root"/*/warden/instance-"$1"/cgroup.procs; do
    # cgroup files report size 0: read them.
    if read -r pid <"$procs" 2>/dev/null && [[ -n $pid ]]; then
      return 0
    fi
  done
  return 1
}
