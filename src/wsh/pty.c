#include "pty.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "util.h"

int pty_open(int *master, int *slave)
{
	int unlock = 0;
	unsigned int n;
	char path[64];
	int m, s;

	m = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0)
		return -1;
	if (ioctl(m, TIOCSPTLCK, &unlock) < 0)
		goto fail;
#ifdef TIOCGPTPEER
	/* Opening the peer through the master avoids a path lookup. */
	s = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (s >= 0)
		goto done;
	if (errno != EINVAL && errno != ENOTTY)
		goto fail;
#endif
	if (ioctl(m, TIOCGPTN, &n) < 0)
		goto fail;
	snprintf(path, sizeof(path), "/dev/pts/%u", n);
	s = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (s < 0)
		goto fail;
#ifdef TIOCGPTPEER
done:
#endif
	*master = m;
	*slave = s;
	return 0;
fail:
	close_quietly(m);
	return -1;
}
