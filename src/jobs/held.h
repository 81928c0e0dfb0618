/* One held job: the per-job half of the holder (holder.c has the table and
 * the poll integration). Internal to libjobs. */
#ifndef JOBS_HELD_H
#define JOBS_HELD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "clients.h"
#include "holder.h"

/* Readers beyond this wait in the listen backlog until one leaves. */
#define CLIENTS_PER_JOB_MAX 256

struct held_job {
	char *name;
	int dir_fd;
	int output_fd;
	int listen_fd;
	int pipe_fds[2];        /* stdout, stderr; -1 once at EOF */
	pid_t pid;
	unsigned long long output_limit;
	unsigned long long kept_bytes;
	off_t output_size;
	bool discard_output;
	bool can_splice;        /* output_fd is written at offsets (no O_APPEND) */
	bool accepting;
	bool out_of_fds;        /* accepting paused until a descriptor is freed */
	bool limit_exceeded;
	bool write_failed;
	bool reaped;
	bool finished;
	int wait_status;        /* -1: unknown */
	struct client_set clients;
	struct syslog_fwd *syslog;
};

/* NULL (ENOMEM) leaves spec's descriptors alone; see held_spec_discard. */
struct held_job *held_job_new(const struct held_job_spec *spec);
/* Closes what the job still has open and frees it. */
void held_job_free(struct held_job *j);
/* Closes every descriptor of a spec that could not be held; removes notify.sock. */
void held_spec_discard(const struct held_job_spec *spec);

bool held_job_pipes_open(const struct held_job *j);

/* The handlers below return true when they closed a descriptor. buffer has
 * room for RECORD_HEADER_SIZE + RECORD_MAX_PAYLOAD bytes. */
bool held_job_read_pipe(struct held_job *j, int index, unsigned char *buffer);
void held_job_accept(struct held_job *j);
bool held_job_serve_client(struct held_job *j, size_t index, short revents);

/* Once reaped and both pipes are at EOF: writes status, closes the readers
 * and everything else. Returns true when it finished the job now. */
bool held_job_finish_if_done(struct held_job *j);

#endif
