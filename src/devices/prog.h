/* The BPF_PROG_TYPE_CGROUP_DEVICE program, built from rules as an
 * instruction array. */
#ifndef DEVICES_PROG_H
#define DEVICES_PROG_H

#include <linux/bpf.h>
#include <stddef.h>

#include "rules.h"

/* Prologue + 6 per rule + "deny" epilogue, with room to spare. */
#define PROG_MAX_INSNS (8 + 6 * RULES_MAX)

struct prog {
	struct bpf_insn insns[PROG_MAX_INSNS];
	size_t len;
};

/* Fills prog: allow an access if any rule allows it, deny everything else.
 * Returns 0, or -1 if there are more than RULES_MAX rules. */
int prog_build(struct prog *prog, const struct rule *rules, size_t count);

#endif
