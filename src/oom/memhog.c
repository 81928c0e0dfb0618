/*
 * memhog MIB: test helper for oom's test.sh. Allocates MIB mebibytes and
 * touches every page, then exits 0. In a memory cgroup with a lower limit
 * it is killed by the kernel's OOM killer instead.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char *end;
	long mib = argc == 2 ? strtol(argv[1], &end, 10) : -1;
	if (argc != 2 || *end != '\0' || mib <= 0) {
		fprintf(stderr, "usage: %s MIB\n", argv[0]);
		return 2;
	}
	size_t size = (size_t)mib << 20;
	volatile char *p = malloc(size);
	if (p == NULL) {
		perror("memhog: malloc");
		return 1;
	}
	long page = sysconf(_SC_PAGESIZE);
	if (page <= 0)
		page = 4096;
	for (size_t off = 0; off < size; off += (size_t)page)
		p[off] = 1;
	free((void *)p);
	return 0;
}
