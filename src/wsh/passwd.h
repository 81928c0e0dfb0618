/* A private /etc/passwd reader. wshd is static and runs inside arbitrary
 * root filesystems, so it must not go through NSS. IDs are full-width. */
#ifndef WSH_PASSWD_H
#define WSH_PASSWD_H

#include <sys/types.h>

struct passwd_entry {
	char *name;
	uid_t uid;
	gid_t gid;
	char *home;
	char *shell;
	char *line;     /* owns the strings above */
};

/*
 * Find the entry for name in the passwd file at path.
 * Returns 0 when found, 1 when there is no such user (or only malformed
 * lines for it), -1 with errno on an I/O error.
 */
int passwd_lookup(const char *path, const char *name, struct passwd_entry *out);
void passwd_entry_free(struct passwd_entry *e);

#endif
