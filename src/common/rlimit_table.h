/* The resource limits a job can be given: the one table of them for the C
 * helpers. Their order is the order of the ResourceLimits struct in
 * spec/protocol.yml, which the Python side reads (tests/unit/test_rlimits.py
 * checks that the two agree), and a limit's position here is its index on
 * the wshd wire.
 *
 * X(NAME, name, DEFAULT): NAME as in RLIMIT_<NAME>, name as clients and the
 * config spell it, DEFAULT what wshd gives a job whose request does not
 * mention the limit (soft = hard). */
#ifndef WARDEN_RLIMIT_TABLE_H
#define WARDEN_RLIMIT_TABLE_H

#include <stdint.h>

#define WARDEN_RLIM_UNLIMITED UINT64_MAX

#define WARDEN_RLIMITS(X) \
	X(AS, as, WARDEN_RLIM_UNLIMITED) \
	X(CORE, core, 0) \
	X(CPU, cpu, WARDEN_RLIM_UNLIMITED) \
	X(DATA, data, WARDEN_RLIM_UNLIMITED) \
	X(FSIZE, fsize, WARDEN_RLIM_UNLIMITED) \
	X(LOCKS, locks, WARDEN_RLIM_UNLIMITED) \
	X(MEMLOCK, memlock, 65536) \
	X(MSGQUEUE, msgqueue, 819200) \
	X(NICE, nice, 0) \
	X(NOFILE, nofile, 1024) \
	X(NPROC, nproc, 1024) \
	X(RSS, rss, WARDEN_RLIM_UNLIMITED) \
	X(RTPRIO, rtprio, 0) \
	X(SIGPENDING, sigpending, 1024) \
	X(STACK, stack, 8u * 1024u * 1024u)

#define WARDEN_RLIMIT_ONE(NAME, name, def) +1
#define WARDEN_RLIMIT_COUNT (0 WARDEN_RLIMITS(WARDEN_RLIMIT_ONE))

#endif
