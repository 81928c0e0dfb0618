/*
 * The program, for the context struct bpf_cgroup_dev_ctx in r1:
 *
 *     r2 = ctx->access_type          (access << 16) | type
 *     r3 = r2 & 0xffff               type: BPF_DEVCG_DEV_BLOCK / _CHAR
 *     r2 >>= 16                      access: BPF_DEVCG_ACC_MKNOD|READ|WRITE
 *     r4 = ctx->major
 *     r5 = ctx->minor
 *   for each rule:
 *     if r3 != rule.type goto next             (left out for type 'a')
 *     if r2 & ~rule.access goto next           (an access the rule lacks)
 *     if r4 != rule.major goto next            (left out for '*')
 *     if r5 != rule.minor goto next            (left out for '*')
 *     r0 = 1; exit                             allow
 *   next:
 *     ...
 *   r0 = 0; exit                               deny
 *
 * A rule that matches everything ("a") ends the program: allow.
 *
 * As in v1, every access asked for must be granted by one rule: an open for
 * read and write of a device that one rule allows for "r" only is denied.
 */
#include "prog.h"

/* Instruction encodings (linux/bpf.h, linux/bpf_common.h). */
#define INSN(CODE, DST, SRC, OFF, IMM) \
	((struct bpf_insn){.code = (CODE), .dst_reg = (DST), .src_reg = (SRC), .off = (OFF), .imm = (IMM)})
/* dst = *(u32 *)(src + off) */
#define LDX_W(DST, SRC, OFF) INSN(BPF_LDX | BPF_MEM | BPF_W, DST, SRC, OFF, 0)
/* dst OP= imm, 64 bits */
#define ALU_IMM(OP, DST, IMM) INSN(BPF_ALU64 | (OP) | BPF_K, DST, 0, 0, IMM)
/* dst = src */
#define MOV_REG(DST, SRC) INSN(BPF_ALU64 | BPF_MOV | BPF_X, DST, SRC, 0, 0)
/* if (dst OP imm) skip OFF instructions */
#define JMP_IMM(OP, DST, IMM, OFF) INSN(BPF_JMP | (OP) | BPF_K, DST, 0, OFF, IMM)
#define EXIT() INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

enum { R0, R1, R2, R3, R4, R5 };

#define ACC_ALL (BPF_DEVCG_ACC_MKNOD | BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE)

static void emit(struct prog *prog, struct bpf_insn insn)
{
	prog->insns[prog->len++] = insn;
}

/* One rule's block; its "goto next" jumps land just after it. Returns 1 if
 * the rule matches everything (no jump): what follows would be unreachable,
 * which the verifier refuses. */
static int emit_rule(struct prog *prog, const struct rule *rule)
{
	size_t jumps[4], njumps = 0;

	if (rule->type != RULE_ANY) {
		jumps[njumps++] = prog->len;
		emit(prog, JMP_IMM(BPF_JNE, R3, rule->type, 0));
	}
	if ((rule->access & ACC_ALL) != ACC_ALL) {
		jumps[njumps++] = prog->len;
		emit(prog, JMP_IMM(BPF_JSET, R2, (int)(ACC_ALL & ~rule->access), 0));
	}
	if (rule->major != RULE_ANY) {
		jumps[njumps++] = prog->len;
		emit(prog, JMP_IMM(BPF_JNE, R4, (int)rule->major, 0));
	}
	if (rule->minor != RULE_ANY) {
		jumps[njumps++] = prog->len;
		emit(prog, JMP_IMM(BPF_JNE, R5, (int)rule->minor, 0));
	}
	emit(prog, ALU_IMM(BPF_MOV, R0, 1));
	emit(prog, EXIT());
	/* A jump's offset counts from the instruction after it. */
	for (size_t i = 0; i < njumps; i++)
		prog->insns[jumps[i]].off = (__s16)(prog->len - jumps[i] - 1);
	return njumps == 0;
}

int prog_build(struct prog *prog, const struct rule *rules, size_t count)
{
	if (count > RULES_MAX)
		return -1;
	prog->len = 0;
	emit(prog, LDX_W(R2, R1, offsetof(struct bpf_cgroup_dev_ctx, access_type)));
	emit(prog, MOV_REG(R3, R2));
	emit(prog, ALU_IMM(BPF_AND, R3, 0xffff));
	emit(prog, ALU_IMM(BPF_RSH, R2, 16));
	emit(prog, LDX_W(R4, R1, offsetof(struct bpf_cgroup_dev_ctx, major)));
	emit(prog, LDX_W(R5, R1, offsetof(struct bpf_cgroup_dev_ctx, minor)));
	for (size_t i = 0; i < count; i++) {
		if (emit_rule(prog, &rules[i]))
			return 0; /* allows everything: no rule after it, no deny */
	}
	emit(prog, ALU_IMM(BPF_MOV, R0, 0));
	emit(prog, EXIT());
	return 0;
}
