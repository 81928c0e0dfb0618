/*
 * repquota MOUNTPOINT UID...
 *
 * Prints the user quota of each UID on the filesystem mounted exactly at
 * MOUNTPOINT, one line per UID:
 *
 *   <uid> <bytes used> <block soft> <block hard> <block grace>
 *         <inodes used> <inode soft> <inode hard> <inode grace>
 *
 * Limits are in 1 KiB quota blocks, usage in bytes, grace fields are the
 * kernel's expiry timestamps (0 when under the soft limit). Unlike the stock
 * repquota it asks the kernel directly (no sync, only the listed uids).
 *
 * Exit 0; 1 on the first error (explained on stderr; lines already printed
 * stay); 2 on a usage error. Runs on the host.
 */
#include <errno.h>
#include <limits.h>
#include <mntent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/quota.h>
#include <sys/types.h>

#define EXIT_FAIL 1
#define EXIT_USAGE 2

static void usage(const char *prog)
{
	fprintf(stderr,
		"usage: %s MOUNTPOINT UID...\n"
		"  prints '<uid> <bytes used> <block soft> <block hard> <block grace>\n"
		"          <inodes used> <inode soft> <inode hard> <inode grace>' per uid\n",
		prog);
	exit(EXIT_USAGE);
}

static int parse_uid(const char *text, uid_t *uid)
{
	char *end;
	errno = 0;
	unsigned long value = strtoul(text, &end, 10);
	if (text[0] < '0' || text[0] > '9' || *end != '\0' || errno != 0 ||
	    value > (unsigned long)(uid_t)-1 - 1)
		return -1;
	*uid = (uid_t)value;
	return 0;
}

/*
 * The device mounted at mountpoint (the topmost mount there wins), in a
 * malloc'd string, or NULL (errno set; 0 when there is no such mount).
 */
static char *find_device(const char *mountpoint)
{
	FILE *mounts = setmntent("/proc/self/mounts", "r");
	if (mounts == NULL)
		return NULL;
	char *device = NULL;
	struct mntent *entry;
	while ((entry = getmntent(mounts)) != NULL) {
		if (strcmp(entry->mnt_dir, mountpoint) != 0)
			continue;
		free(device);
		device = strdup(entry->mnt_fsname);
		if (device == NULL)
			break;
	}
	int saved = errno;
	endmntent(mounts);
	if (device == NULL)
		errno = entry == NULL ? 0 : saved;
	return device;
}

static const char *explain(int err)
{
	switch (err) {
	case ENOSYS:
		return "the kernel has no quota support";
	case ESRCH:
		return "no quota for this user: quotas are not on for this filesystem"
		       " (quotaon), or the kernel has no quota format";
	case ENOTBLK:
		return "the mounted device is not a block device";
	case ENOENT:
		return "the mounted device does not exist";
	case EFAULT:
		return "the mounted device is not valid";
	case EPERM:
		return "insufficient privilege (reading another user's quota needs root)";
	default:
		return strerror(err);
	}
}

int main(int argc, char **argv)
{
	if (argc < 3)
		usage(argv[0]);

	/* "/srv/" and "/srv" name the same mount point. */
	char mountpoint[PATH_MAX];
	size_t len = strlen(argv[1]);
	if (len == 0 || len >= sizeof(mountpoint))
		usage(argv[0]);
	memcpy(mountpoint, argv[1], len + 1);
	while (len > 1 && mountpoint[len - 1] == '/')
		mountpoint[--len] = '\0';

	uid_t *uids = calloc((size_t)argc - 2, sizeof(*uids));
	if (uids == NULL) {
		perror("repquota: calloc");
		return EXIT_FAIL;
	}
	for (int i = 2; i < argc; i++) {
		if (parse_uid(argv[i], &uids[i - 2]) != 0) {
			fprintf(stderr, "repquota: not a uid: '%s'\n", argv[i]);
			usage(argv[0]);
		}
	}

	char *device = find_device(mountpoint);
	if (device == NULL) {
		if (errno != 0)
			fprintf(stderr, "repquota: reading /proc/self/mounts: %s\n", strerror(errno));
		else
			fprintf(stderr, "repquota: no filesystem is mounted at %s\n", mountpoint);
		return EXIT_FAIL;
	}

	for (int i = 0; i < argc - 2; i++) {
		struct dqblk quota;
		memset(&quota, 0, sizeof(quota));
		if (quotactl(QCMD(Q_GETQUOTA, USRQUOTA), device, (int)uids[i], (caddr_t)&quota) != 0) {
			int err = errno;
			fflush(stdout);
			fprintf(stderr, "repquota: uid %u on %s (%s): %s\n",
				(unsigned)uids[i], mountpoint, device, explain(err));
			return EXIT_FAIL;
		}
		printf("%u %llu %llu %llu %llu %llu %llu %llu %llu\n", (unsigned)uids[i],
		       (unsigned long long)quota.dqb_curspace,
		       (unsigned long long)quota.dqb_bsoftlimit,
		       (unsigned long long)quota.dqb_bhardlimit,
		       (unsigned long long)quota.dqb_btime,
		       (unsigned long long)quota.dqb_curinodes,
		       (unsigned long long)quota.dqb_isoftlimit,
		       (unsigned long long)quota.dqb_ihardlimit,
		       (unsigned long long)quota.dqb_itime);
	}
	if (fflush(stdout) != 0) {
		perror("repquota: writing the output");
		return EXIT_FAIL;
	}
	free(device);
	free(uids);
	return 0;
}
