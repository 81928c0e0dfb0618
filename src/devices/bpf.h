/* Thin wrappers around bpf(2) for cgroup device programs. Each returns -1
 * with errno set on failure. */
#ifndef DEVICES_BPF_H
#define DEVICES_BPF_H

#include <stddef.h>
#include <stdint.h>

#include "prog.h"

/* The name every program of ours is loaded with; detach removes only these. */
#define DEVICES_PROG_NAME "warden_devices"

/* Loads prog; returns its fd. On failure, with log/log_size non-zero, the
 * verifier's log is left in log. */
int bpf_load_device_prog(const struct prog *prog, char *log, size_t log_size);

/* Attaches (BPF_F_ALLOW_MULTI) or detaches prog_fd on the cgroup cgroup_fd. */
int bpf_attach_device(int cgroup_fd, int prog_fd);
int bpf_detach_device(int cgroup_fd, int prog_fd);

/* Ids of the device programs attached to the cgroup itself (not inherited),
 * at most max of them; returns how many there are (may exceed max). */
int bpf_query_device(int cgroup_fd, uint32_t *ids, uint32_t max);

/* An fd for program id; its name into name (BPF_OBJ_NAME_LEN bytes). */
int bpf_prog_fd_by_id(uint32_t id);
int bpf_prog_name(int prog_fd, char *name, size_t size);

#endif
