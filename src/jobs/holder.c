/* The table of held jobs and its poll integration (held.c: one job). */
#include "holder.h"

#include <errno.h>
#include <stdlib.h>

#include "held.h"
#include "jobdir.h"

enum slot_role { SLOT_STDOUT, SLOT_STDERR, SLOT_LISTENER, SLOT_CLIENT };

/* What the pollfd at the same index belongs to. */
struct slot {
	struct held_job *job;
	enum slot_role role;
	size_t index;           /* SLOT_CLIENT: index in job->clients */
};

struct job_holder {
	struct held_job **jobs;
	size_t njobs;
	size_t jobs_cap;
	size_t active;          /* jobs not finished */
	struct pollfd *fds;
	struct slot *slots;
	size_t fds_cap;
	size_t reserved;
	size_t nfds;
	bool fds_freed;         /* a descriptor was closed since the last dispatch */
	unsigned char buffer[RECORD_HEADER_SIZE + RECORD_MAX_PAYLOAD];
};

struct job_holder *job_holder_new(void)
{
	return calloc(1, sizeof(struct job_holder));
}

void job_holder_free(struct job_holder *h)
{
	size_t i;

	if (h == NULL)
		return;
	for (i = 0; i < h->njobs; i++)
		held_job_free(h->jobs[i]);
	free(h->jobs);
	free(h->fds);
	free(h->slots);
	free(h);
}

int job_holder_add(struct job_holder *h, const struct held_job_spec *spec)
{
	struct held_job *j;

	if (h->njobs == h->jobs_cap) {
		size_t cap = h->jobs_cap ? h->jobs_cap * 2 : 16;
		struct held_job **jobs = reallocarray(h->jobs, cap, sizeof(*jobs));

		if (jobs == NULL) {
			held_spec_discard(spec);
			return -1;
		}
		h->jobs = jobs;
		h->jobs_cap = cap;
	}
	j = held_job_new(spec);
	if (j == NULL) {
		held_spec_discard(spec);
		return -1;
	}
	h->jobs[h->njobs++] = j;
	h->active++;
	return 0;
}

size_t job_holder_count(const struct job_holder *h)
{
	return h->active;
}

static struct held_job *find_job(const struct job_holder *h, pid_t pid)
{
	size_t i;

	for (i = 0; i < h->njobs; i++) {
		if (!h->jobs[i]->finished && h->jobs[i]->pid == pid)
			return h->jobs[i];
	}
	return NULL;
}

bool job_holder_output_open(const struct job_holder *h, pid_t pid)
{
	const struct held_job *j = find_job(h, pid);

	return j != NULL && held_job_pipes_open(j);
}

static void finish_if_done(struct job_holder *h, struct held_job *j)
{
	if (held_job_finish_if_done(j)) {
		h->active--;
		h->fds_freed = true;
	}
}

bool job_holder_child_exited(struct job_holder *h, pid_t pid, int wait_status)
{
	struct held_job *j = find_job(h, pid);

	if (j == NULL || j->reaped)
		return false;
	j->reaped = true;
	j->wait_status = wait_status;
	finish_if_done(h, j);
	return true;
}

/* Frees finished jobs (never while a poll round refers to them). */
static void sweep(struct job_holder *h)
{
	size_t i, kept = 0;

	for (i = 0; i < h->njobs; i++) {
		if (h->jobs[i]->finished)
			held_job_free(h->jobs[i]);
		else
			h->jobs[kept++] = h->jobs[i];
	}
	h->njobs = kept;
}

static int reserve_fds(struct job_holder *h, size_t needed)
{
	size_t cap;
	struct pollfd *fds;
	struct slot *slots;

	if (needed <= h->fds_cap)
		return 0;
	cap = needed * 2;
	fds = reallocarray(h->fds, cap, sizeof(*fds));
	if (fds == NULL)
		return -1;
	h->fds = fds;
	slots = reallocarray(h->slots, cap, sizeof(*slots));
	if (slots == NULL)
		return -1;
	h->slots = slots;
	h->fds_cap = cap;
	return 0;
}

/* Out of memory for the array: shed the readers rather than the jobs. */
static void shed_readers(struct job_holder *h)
{
	size_t i, k;

	for (i = 0; i < h->njobs; i++) {
		struct held_job *j = h->jobs[i];

		for (k = 0; k < j->clients.count; k++)
			client_set_drop(&j->clients, k);
		client_set_compact(&j->clients);
		j->out_of_fds = true;
		j->accepting = false;
	}
}

static void add_fd(struct job_holder *h, int fd, struct held_job *j, enum slot_role role, size_t index)
{
	h->fds[h->nfds] = (struct pollfd){ .fd = fd, .events = POLLIN };
	h->slots[h->nfds] = (struct slot){ .job = j, .role = role, .index = index };
	h->nfds++;
}

struct pollfd *job_holder_poll_fds(struct job_holder *h, size_t reserved, size_t *count)
{
	size_t needed = reserved, i, k;

	sweep(h);
	for (i = 0; i < h->njobs; i++)
		needed += 3 + h->jobs[i]->clients.count;
	if (reserve_fds(h, needed) < 0) {
		shed_readers(h);
		if (reserve_fds(h, reserved + 3 * h->njobs) < 0)
			return NULL;
	}

	h->reserved = reserved;
	h->nfds = reserved;
	for (i = 0; i < reserved; i++)
		h->fds[i] = (struct pollfd){ .fd = -1 };
	for (i = 0; i < h->njobs; i++) {
		struct held_job *j = h->jobs[i];

		if (j->pipe_fds[0] >= 0)
			add_fd(h, j->pipe_fds[0], j, SLOT_STDOUT, 0);
		if (j->pipe_fds[1] >= 0)
			add_fd(h, j->pipe_fds[1], j, SLOT_STDERR, 0);
		if (j->accepting)
			add_fd(h, j->listen_fd, j, SLOT_LISTENER, 0);
		for (k = 0; k < j->clients.count; k++)
			add_fd(h, j->clients.fds[k], j, SLOT_CLIENT, k);
	}
	*count = h->nfds;
	return h->fds;
}

static void dispatch_one(struct job_holder *h, const struct slot *s, const struct pollfd *p)
{
	struct held_job *j = s->job;

	switch (s->role) {
	case SLOT_STDOUT:
	case SLOT_STDERR:
		if (held_job_read_pipe(j, s->role == SLOT_STDOUT ? 0 : 1, h->buffer))
			h->fds_freed = true;
		break;
	case SLOT_LISTENER:
		held_job_accept(j);
		break;
	case SLOT_CLIENT:
		/* Dropped meanwhile: the entry is -1 (its number may be reused). */
		if (s->index < j->clients.count && j->clients.fds[s->index] == p->fd &&
		    held_job_serve_client(j, s->index, p->revents))
			h->fds_freed = true;
		break;
	}
}

void job_holder_dispatch(struct job_holder *h)
{
	size_t i;

	for (i = h->reserved; i < h->nfds; i++) {
		if (h->fds[i].revents != 0 && !h->slots[i].job->finished)
			dispatch_one(h, &h->slots[i], &h->fds[i]);
	}
	/* Nothing of this poll round may be used again. */
	h->nfds = h->reserved;

	for (i = 0; i < h->njobs; i++) {
		struct held_job *j = h->jobs[i];

		if (j->finished)
			continue;
		if (client_set_compact(&j->clients) > 0 && !j->out_of_fds &&
		    j->clients.count < CLIENTS_PER_JOB_MAX)
			j->accepting = true;
		finish_if_done(h, j);
	}
	if (!h->fds_freed)
		return;
	/* Descriptors were freed: readers paused for want of them may come in. */
	for (i = 0; i < h->njobs; i++) {
		struct held_job *j = h->jobs[i];

		if (!j->finished && j->out_of_fds) {
			j->out_of_fds = false;
			j->accepting = j->clients.count < CLIENTS_PER_JOB_MAX;
		}
	}
	h->fds_freed = false;
}
