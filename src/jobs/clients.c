#include "clients.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fdio.h"

void client_set_init(struct client_set *clients)
{
	clients->fds = NULL;
	clients->count = 0;
	clients->capacity = 0;
}

int client_set_add(struct client_set *clients, int fd)
{
	if (clients->count == clients->capacity) {
		size_t capacity = clients->capacity ? clients->capacity * 2 : 8;
		int *fds = reallocarray(clients->fds, capacity, sizeof(*fds));
		if (fds == NULL)
			return -1;
		clients->fds = fds;
		clients->capacity = capacity;
	}
	clients->fds[clients->count++] = fd;
	return 0;
}

void client_set_drop(struct client_set *clients, size_t index)
{
	close_quietly(clients->fds[index]);
	clients->fds[index] = -1;
}

size_t client_set_compact(struct client_set *clients)
{
	size_t kept = 0;
	for (size_t i = 0; i < clients->count; i++) {
		if (clients->fds[i] >= 0)
			clients->fds[kept++] = clients->fds[i];
	}
	size_t dropped = clients->count - kept;
	clients->count = kept;
	return dropped;
}

void client_set_notify_one(struct client_set *clients, size_t index)
{
	static const char wakeup = '!';
	int fd = clients->fds[index];

	if (fd < 0)
		return;
	if (send(fd, &wakeup, 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 &&
	    errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ENOBUFS)
		client_set_drop(clients, index);
	/* EAGAIN: the client has unread wake-ups already, which is just as good. */
}

void client_set_notify(struct client_set *clients)
{
	for (size_t i = 0; i < clients->count; i++)
		client_set_notify_one(clients, i);
}

void client_set_close_all(struct client_set *clients)
{
	for (size_t i = 0; i < clients->count; i++)
		close_quietly(clients->fds[i]);
	free(clients->fds);
	client_set_init(clients);
}
