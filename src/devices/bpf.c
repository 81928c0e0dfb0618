#include "bpf.h"

#include <errno.h>
#include <linux/bpf.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int sys_bpf(int cmd, union bpf_attr *attr)
{
	return (int)syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

static uint64_t ptr(const void *p)
{
	return (uint64_t)(uintptr_t)p;
}

int bpf_load_device_prog(const struct prog *prog, char *log, size_t log_size)
{
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
	attr.insns = ptr(prog->insns);
	attr.insn_cnt = (uint32_t)prog->len;
	attr.license = ptr("GPL");
	if (log != NULL && log_size != 0) {
		log[0] = '\0';
		attr.log_buf = ptr(log);
		attr.log_size = (uint32_t)log_size;
		attr.log_level = 1;
	}
	memcpy(attr.prog_name, DEVICES_PROG_NAME, sizeof(DEVICES_PROG_NAME));
	return sys_bpf(BPF_PROG_LOAD, &attr);
}

static int attach_cmd(int cmd, int cgroup_fd, int prog_fd, uint32_t flags)
{
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.target_fd = (uint32_t)cgroup_fd;
	attr.attach_bpf_fd = (uint32_t)prog_fd;
	attr.attach_type = BPF_CGROUP_DEVICE;
	attr.attach_flags = flags;
	return sys_bpf(cmd, &attr);
}

int bpf_attach_device(int cgroup_fd, int prog_fd)
{
	return attach_cmd(BPF_PROG_ATTACH, cgroup_fd, prog_fd, BPF_F_ALLOW_MULTI);
}

int bpf_detach_device(int cgroup_fd, int prog_fd)
{
	return attach_cmd(BPF_PROG_DETACH, cgroup_fd, prog_fd, 0);
}

int bpf_query_device(int cgroup_fd, uint32_t *ids, uint32_t max)
{
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.query.target_fd = (uint32_t)cgroup_fd;
	attr.query.attach_type = BPF_CGROUP_DEVICE;
	attr.query.prog_ids = ptr(ids);
	attr.query.prog_cnt = max;
	if (sys_bpf(BPF_PROG_QUERY, &attr) != 0 && errno != ENOSPC)
		return -1;
	return (int)attr.query.prog_cnt;
}

int bpf_prog_fd_by_id(uint32_t id)
{
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.prog_id = id;
	return sys_bpf(BPF_PROG_GET_FD_BY_ID, &attr);
}

int bpf_prog_name(int prog_fd, char *name, size_t size)
{
	struct bpf_prog_info info;
	union bpf_attr attr;

	memset(&info, 0, sizeof(info));
	memset(&attr, 0, sizeof(attr));
	attr.info.bpf_fd = (uint32_t)prog_fd;
	attr.info.info_len = sizeof(info);
	attr.info.info = ptr(&info);
	if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &attr) != 0)
		return -1;
	if (size == 0) {
		errno = EINVAL;
		return -1;
	}
	size_t n = strnlen(info.name, sizeof(info.name));
	if (n >= size)
		n = size - 1;
	memcpy(name, info.name, n);
	name[n] = '\0';
	return 0;
}
