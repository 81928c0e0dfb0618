#include "passwd.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parse an id field: decimal, below (uint32_t)-1, which means "no id". */
static int parse_id(const char *s, uint32_t *out)
{
	unsigned long long v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (unsigned)(*s - '0');
		if (v >= UINT32_MAX)
			return -1;
	}
	*out = (uint32_t)v;
	return 0;
}

/* Split line (no newline) into the 7 passwd fields. */
static int split_fields(char *line, char *field[7])
{
	int n = 0;
	char *p = line;

	field[n++] = p;
	while (*p != '\0') {
		if (*p == ':') {
			*p = '\0';
			if (n == 7)
				return -1;
			field[n++] = p + 1;
		}
		p++;
	}
	return n == 7 ? 0 : -1;
}

int passwd_lookup(const char *path, const char *name, struct passwd_entry *out)
{
	FILE *f;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	size_t namelen = strlen(name);
	int result = 1;

	memset(out, 0, sizeof(*out));
	if (namelen == 0 || strchr(name, ':') != NULL)
		return 1;
	f = fopen(path, "re");
	if (f == NULL)
		return -1;

	errno = 0;
	while ((len = getline(&line, &cap, f)) >= 0) {
		char *field[7];
		uint32_t uid, gid;

		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		if (strncmp(line, name, namelen) != 0 || line[namelen] != ':')
			continue;
		if (split_fields(line, field) < 0 || parse_id(field[2], &uid) < 0 ||
		    parse_id(field[3], &gid) < 0)
			continue;   /* malformed: keep looking, as NSS files would */
		out->line = line;
		out->name = field[0];
		out->uid = (uid_t)uid;
		out->gid = (gid_t)gid;
		out->home = field[5];
		out->shell = field[6];
		line = NULL;
		result = 0;
		break;
	}
	if (result != 0 && ferror(f)) {
		int saved = errno ? errno : EIO;

		free(line);
		fclose(f);
		errno = saved;
		return -1;
	}
	free(line);
	fclose(f);
	return result;
}

void passwd_entry_free(struct passwd_entry *e)
{
	free(e->line);
	memset(e, 0, sizeof(*e));
}
