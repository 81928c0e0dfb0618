/*
 * devices-bpf: the cgroup v2 devices whitelist (v2 has no devices
 * controller; a BPF_PROG_TYPE_CGROUP_DEVICE program takes its place).
 *
 *   devices-bpf attach CGROUP_DIR [RULE...]
 *       Loads a program that allows the RULEs (default: the built-in list,
 *       the v1 whitelist of hook-parent-after-clone.sh) and denies every
 *       other device access, and attaches it to CGROUP_DIR with
 *       BPF_F_ALLOW_MULTI. Programs of ours attached there before are
 *       detached after the new one is in, so attaching again replaces.
 *       The program stays attached after we exit, until the cgroup is
 *       removed or it is detached.
 *   devices-bpf detach CGROUP_DIR
 *       Detaches our programs from CGROUP_DIR. Nothing attached, or no
 *       CGROUP_DIR at all, is success (destroy can run it twice).
 *   devices-bpf list CGROUP_DIR
 *       Prints the ids of our programs attached to CGROUP_DIR, one a line.
 *   devices-bpf rules
 *       Prints the built-in rules, one a line.
 *
 * RULE is one argument in the v1 devices.allow syntax: "c 1:3 rw",
 * "c 136:* rw", "b *:* m", or "a" for everything.
 *
 *   exit 0  done
 *   exit 1  a system call failed, or CGROUP_DIR is not a cgroup v2
 *           directory (message on stderr; the verifier's log if the
 *           kernel refused the program)
 *   exit 2  usage error or a bad RULE
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "bpf.h"
#include "prog.h"
#include "rules.h"

#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2

/* BPF_CGROUP_MAX_PROGS in the kernel: no more can be attached to a cgroup. */
#define MAX_ATTACHED 64
#define LOG_SIZE (64 * 1024)

static int usage(void)
{
	fprintf(stderr,
	        "usage: devices-bpf attach CGROUP_DIR [RULE...]\n"
	        "       devices-bpf detach CGROUP_DIR\n"
	        "       devices-bpf list CGROUP_DIR\n"
	        "       devices-bpf rules\n"
	        "RULE: TYPE MAJOR:MINOR ACCESS as one argument, e.g. 'c 1:3 rw'\n");
	return EXIT_USAGE;
}

static int fail(const char *dir, const char *what)
{
	fprintf(stderr, "devices-bpf: %s: %s: %s\n", dir, what, strerror(errno));
	return EXIT_FAIL;
}

/* Opens dir as a cgroup v2 directory: the fd, or -1 (errno kept, or EMEDIUMTYPE
 * for a directory of another file system, such as a cgroup v1 hierarchy). */
static int open_cgroup2(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct statfs fs;
	if (fstatfs(fd, &fs) != 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	if (fs.f_type != CGROUP2_SUPER_MAGIC) {
		close(fd);
		errno = EMEDIUMTYPE;
		return -1;
	}
	return fd;
}

static int open_failed(const char *dir)
{
	if (errno == EMEDIUMTYPE) {
		fprintf(stderr, "devices-bpf: %s: not a cgroup v2 directory\n", dir);
		return EXIT_FAIL;
	}
	return fail(dir, "open");
}

/*
 * Our programs attached to the cgroup: their ids into ours, how many into
 * *count. Programs of other names (systemd's, say) are left out.
 */
static int find_ours(const char *dir, int cgroup_fd, uint32_t *ours, size_t *count)
{
	uint32_t ids[MAX_ATTACHED];
	int n = bpf_query_device(cgroup_fd, ids, MAX_ATTACHED);

	*count = 0;
	if (n < 0)
		return fail(dir, "BPF_PROG_QUERY");
	if (n > MAX_ATTACHED) {
		fprintf(stderr, "devices-bpf: %s: %d programs attached, more than %d\n",
		        dir, n, MAX_ATTACHED);
		return EXIT_FAIL;
	}
	for (int i = 0; i < n; i++) {
		int fd = bpf_prog_fd_by_id(ids[i]);
		if (fd < 0) {
			if (errno == ENOENT)
				continue; /* detached and freed meanwhile */
			return fail(dir, "BPF_PROG_GET_FD_BY_ID");
		}
		char name[BPF_OBJ_NAME_LEN];
		int got = bpf_prog_name(fd, name, sizeof(name));
		int saved = errno;
		if (close(fd) != 0)
			return fail(dir, "close");
		errno = saved;
		if (got != 0)
			return fail(dir, "BPF_OBJ_GET_INFO_BY_FD");
		if (strcmp(name, DEVICES_PROG_NAME) == 0)
			ours[(*count)++] = ids[i];
	}
	return EXIT_OK;
}

/* Detaches the programs ids from the cgroup; ones already gone are fine. */
static int detach_ids(const char *dir, int cgroup_fd, const uint32_t *ids, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		int fd = bpf_prog_fd_by_id(ids[i]);
		if (fd < 0) {
			if (errno == ENOENT)
				continue;
			return fail(dir, "BPF_PROG_GET_FD_BY_ID");
		}
		int rc = bpf_detach_device(cgroup_fd, fd);
		int saved = errno;
		if (close(fd) != 0)
			return fail(dir, "close");
		errno = saved;
		if (rc != 0 && errno != ENOENT)
			return fail(dir, "BPF_PROG_DETACH");
	}
	return EXIT_OK;
}

static int load(const char *dir, const struct prog *prog)
{
	int fd = bpf_load_device_prog(prog, NULL, 0);
	if (fd >= 0)
		return fd;
	int saved = errno;
	char *log = malloc(LOG_SIZE);
	if (log != NULL && bpf_load_device_prog(prog, log, LOG_SIZE) < 0 && log[0] != '\0')
		fprintf(stderr, "devices-bpf: the verifier's log:\n%s\n", log);
	free(log);
	errno = saved;
	fail(dir, "BPF_PROG_LOAD");
	return -1;
}

static int cmd_attach(const char *dir, char **args, int nargs)
{
	struct rule rules[RULES_MAX];
	size_t count = nargs > 0 ? (size_t)nargs : default_rules_count;

	if (count > RULES_MAX) {
		fprintf(stderr, "devices-bpf: at most %d rules\n", RULES_MAX);
		return EXIT_USAGE;
	}
	for (size_t i = 0; i < count; i++) {
		const char *text = nargs > 0 ? args[i] : default_rules[i];
		const char *why = "";
		if (rule_parse(text, &rules[i], &why) != 0) {
			fprintf(stderr, "devices-bpf: bad rule '%s': %s\n", text, why);
			return EXIT_USAGE;
		}
	}
	struct prog prog;
	if (prog_build(&prog, rules, count) != 0)
		return EXIT_USAGE;

	int cgroup_fd = open_cgroup2(dir);
	if (cgroup_fd < 0)
		return open_failed(dir);
	uint32_t old[MAX_ATTACHED];
	size_t nold;
	int rc = find_ours(dir, cgroup_fd, old, &nold);
	if (rc != EXIT_OK)
		goto out;
	int prog_fd = load(dir, &prog);
	if (prog_fd < 0) {
		rc = EXIT_FAIL;
		goto out;
	}
	if (bpf_attach_device(cgroup_fd, prog_fd) != 0) {
		rc = fail(dir, "BPF_PROG_ATTACH");
		if (errno == EPERM)
			fprintf(stderr, "devices-bpf: (EPERM: not root, or a program is attached "
			                "there, or above, without BPF_F_ALLOW_MULTI)\n");
	} else {
		/* The new program is in: only now the old ones go. */
		rc = detach_ids(dir, cgroup_fd, old, nold);
	}
	if (close(prog_fd) != 0 && rc == EXIT_OK)
		rc = fail(dir, "close");
out:
	if (close(cgroup_fd) != 0 && rc == EXIT_OK)
		rc = fail(dir, "close");
	return rc;
}

static int cmd_detach(const char *dir)
{
	int cgroup_fd = open_cgroup2(dir);
	if (cgroup_fd < 0) {
		if (errno == ENOENT)
			return EXIT_OK; /* the cgroup is gone, and its programs with it */
		return open_failed(dir);
	}
	uint32_t ids[MAX_ATTACHED];
	size_t count;
	int rc = find_ours(dir, cgroup_fd, ids, &count);
	if (rc == EXIT_OK)
		rc = detach_ids(dir, cgroup_fd, ids, count);
	if (close(cgroup_fd) != 0 && rc == EXIT_OK)
		rc = fail(dir, "close");
	return rc;
}

static int cmd_list(const char *dir)
{
	int cgroup_fd = open_cgroup2(dir);
	if (cgroup_fd < 0)
		return open_failed(dir);
	uint32_t ids[MAX_ATTACHED];
	size_t count;
	int rc = find_ours(dir, cgroup_fd, ids, &count);
	for (size_t i = 0; rc == EXIT_OK && i < count; i++)
		printf("%" PRIu32 "\n", ids[i]);
	if (close(cgroup_fd) != 0 && rc == EXIT_OK)
		rc = fail(dir, "close");
	if (fflush(stdout) != 0 && rc == EXIT_OK)
		rc = fail(dir, "writing to stdout");
	return rc;
}

static int cmd_rules(void)
{
	for (size_t i = 0; i < default_rules_count; i++)
		printf("%s\n", default_rules[i]);
	if (fflush(stdout) != 0) {
		fprintf(stderr, "devices-bpf: writing to stdout: %s\n", strerror(errno));
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "rules") == 0)
		return cmd_rules();
	if (argc < 3 || argv[2][0] == '\0')
		return usage();
	const char *cmd = argv[1], *dir = argv[2];
	if (strcmp(cmd, "attach") == 0)
		return cmd_attach(dir, argv + 3, argc - 3);
	if (argc != 3)
		return usage();
	if (strcmp(cmd, "detach") == 0)
		return cmd_detach(dir);
	if (strcmp(cmd, "list") == 0)
		return cmd_list(dir);
	return usage();
}
