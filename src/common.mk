# Shared compiler settings, included by every helper's Makefile.
# `make CFLAGS=-O0` replaces the optimisation level; the warning and language
# flags below are always appended.
CFLAGS ?= -O2
override CFLAGS += -Wall -Wextra -Werror -D_GNU_SOURCE -std=gnu11
DEPFLAGS := -MMD -MP

%.o: %.c
	$(CC) $(CFLAGS) $(DEPFLAGS) -c -o $@ $<
