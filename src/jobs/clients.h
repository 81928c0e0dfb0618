/* The reader connections of notify.sock. */
#ifndef JOBS_CLIENTS_H
#define JOBS_CLIENTS_H

#include <stddef.h>

struct client_set {
	int *fds; /* -1 marks a dropped client until the next compaction */
	size_t count;
	size_t capacity;
};

void client_set_init(struct client_set *clients);
int client_set_add(struct client_set *clients, int fd);
void client_set_drop(struct client_set *clients, size_t index);
/* Removes the dropped entries; returns how many there were. */
size_t client_set_compact(struct client_set *clients);
/* Sends one byte to every client without ever blocking. */
void client_set_notify(struct client_set *clients);
void client_set_notify_one(struct client_set *clients, size_t index);
void client_set_close_all(struct client_set *clients);

#endif
