# shellcheck shell=bash
# shellcheck disable=SC2154 # $id is common.sh's, container_pid_list cgroup.sh's
# Killing the container's processes, and destroy_kernel_objects: everything
# the kernel holds for a container, found by its id (skeleton destroy.sh;
# root clear.sh for leftovers whose dir is gone).
#
# Needs common.sh, cgroup.sh and ifaces.sh.

# kill_container_processes: SIGKILL everything in the container's cgroups
# until they are empty. Killing wshd (PID 1 of the container's pid
# namespace) takes every other process in the namespace with it.
kill_container_processes() {
  local tries=0
  while true; do
    cgroup_read_procs
    if ((${#container_pid_list[@]} == 0)); then
      return 0
    fi
    kill -9 "${container_pid_list[@]}" 2>/dev/null || true
    tries=$((tries + 1))
    if ((tries > 1000)); then
      echo "processes still alive in the cgroups of $id after 10s: ${container_pid_list[*]}" >&2
      return 1
    fi
    sleep 0.01
  done
}

# destroy_kernel_objects: processes, interfaces and cgroups of container
# $id. Idempotent; needs only $id. Returns 1 if anything is left. The
# statuses are checked explicitly: callers run it as "... || status=1",
# where set -e does not apply.
destroy_kernel_objects() {
  local ifaces status=0
  find_cgroup_subsystems
  cgroup_kill_all
  cgroup_read_procs
  if ((${#container_pid_list[@]} > 0)); then
    kill -9 "${container_pid_list[@]}" 2>/dev/null || true
  fi
  # Deleting interfaces waits for RCU grace periods; overlap that with
  # waiting for the processes to die.
  remove_interfaces &
  ifaces=$!
  kill_container_processes || status=1
  wait "$ifaces" || status=1
  # A group that still holds processes cannot go.
  if ((status == 0)); then
    cgroup_remove_instance || status=1
  fi
  return "$status"
}
