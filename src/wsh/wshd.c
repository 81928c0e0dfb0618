/*
 * wshd: the init process of a warden container.
 *
 *   wshd --run DIR --lib DIR --root DIR [--jobs DIR] [--title NAME]
 *
 * Run on the host (by start.sh). It prepares the container and returns once
 * the container is up (exit 0) or failed to come up (exit 1). The container
 * init it leaves behind serves wsh requests on <run>/wshd.sock.
 *
 * Launcher (host side):
 *   1. listen on <run>/wshd.sock (in the host mount namespace); create the
 *      jobs directory (default "jobs") if it is missing;
 *   2. keep a private in-memory copy of this executable for the re-exec;
 *   3. unshare the mount namespace and make every mount in it private;
 *   4. run <lib>/hook-parent-before-clone.sh;
 *   5. clone the init into new mount, pid, net, uts and ipc namespaces;
 *   6. run <lib>/hook-parent-after-clone.sh with PID=<init pid>;
 *   7. release the init and wait for it to report that it is serving.
 * Init (PID 1 of the container):
 *   1. wait for the launcher's go;
 *   2. run <lib>/hook-child-before-pivot.sh;
 *   3. open the jobs directory (job mode: the only host path the init keeps,
 *      as a descriptor the jobs never get) and note our host pid;
 *      pivot_root into <root>, the old root at /mnt;
 *   4. run /mnt/<lib>/hook-child-after-pivot.sh;
 *   5. detach the old root (one lazy unmount of /mnt);
 *   6. re-exec from the in-memory copy ("--serve LISTEN_FD READY_FD JOBS_FD
 *      HOST_PID"), so nothing else of the host's filesystem stays referenced;
 *   7. setsid, set the title, report ready, serve forever (server.c).
 * A hook whose file does not exist is skipped (hooks.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hooks.h"
#include "server.h"
#include "util.h"

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

#define TITLE_MAX 64
#define INIT_STACK_SIZE (1024 * 1024)

struct config {
	char run[PATH_MAX];
	char lib[PATH_MAX];
	char root[PATH_MAX];
	char jobs[PATH_MAX];
	const char *title;
};

/* What the init needs from the launcher across clone(). */
struct init_args {
	const struct config *cfg;
	int listen_fd;
	int go_read, go_write;
	int ready_read, ready_write;
	int exe_fd;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: wshd --run DIR --lib DIR --root DIR [--jobs DIR] [--title NAME]\n");
}

static int resolve_dir(const char *opt, const char *path, char *out)
{
	struct stat st;

	if (realpath(path, out) == NULL) {
		fprintf(stderr, "wshd: %s %s: %s\n", opt, path, strerror(errno));
		return -1;
	}
	if (stat(out, &st) < 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "wshd: %s %s: not a directory\n", opt, path);
		return -1;
	}
	return 0;
}

static int parse_args(int argc, char **argv, struct config *cfg)
{
	const char *run = "run", *lib = "lib", *root = "root", *jobs = "jobs";
	int i;

	cfg->title = NULL;
	for (i = 1; i < argc; i++) {
		const char *opt = argv[i];

		if (strcmp(opt, "-h") == 0 || strcmp(opt, "--help") == 0) {
			usage(stdout);
			exit(0);
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "wshd: %s needs a value\n", opt);
			return -1;
		}
		if (strcmp(opt, "--run") == 0)
			run = argv[++i];
		else if (strcmp(opt, "--lib") == 0)
			lib = argv[++i];
		else if (strcmp(opt, "--root") == 0)
			root = argv[++i];
		else if (strcmp(opt, "--jobs") == 0)
			jobs = argv[++i];
		else if (strcmp(opt, "--title") == 0)
			cfg->title = argv[++i];
		else {
			fprintf(stderr, "wshd: unknown option %s\n", opt);
			return -1;
		}
	}
	if (cfg->title != NULL && strlen(cfg->title) > TITLE_MAX) {
		fprintf(stderr, "wshd: --title longer than %d characters\n", TITLE_MAX);
		return -1;
	}
	if (mkdir(jobs, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "wshd: --jobs %s: %s\n", jobs, strerror(errno));
		return -1;
	}
	if (resolve_dir("--run", run, cfg->run) < 0 || resolve_dir("--lib", lib, cfg->lib) < 0 ||
	    resolve_dir("--root", root, cfg->root) < 0 || resolve_dir("--jobs", jobs, cfg->jobs) < 0)
		return -1;
	return 0;
}

/* Make sure 0, 1 and 2 are open, stdin on /dev/null. */
static int sane_stdio(void)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -1;
	if (dup2(fd, STDIN_FILENO) < 0)
		goto fail;
	if (fcntl(STDOUT_FILENO, F_GETFD) < 0 && dup2(fd, STDOUT_FILENO) < 0)
		goto fail;
	if (fcntl(STDERR_FILENO, F_GETFD) < 0 && dup2(fd, STDERR_FILENO) < 0)
		goto fail;
	if (fd > STDERR_FILENO)
		close(fd);
	return 0;
fail:
	close_quietly(fd);
	return -1;
}

/* No descriptor we were started with may leak into the container. */
static int cloexec_inherited_fds(void)
{
	int fd, max;

	if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
		return 0;
	max = (int)sysconf(_SC_OPEN_MAX);
	if (max < 0)
		max = 1024;
	for (fd = 3; fd < max; fd++)
		if (fcntl(fd, F_GETFD) >= 0 && set_cloexec(fd, 1) < 0)
			return -1;
	return 0;
}

static int make_listener(const char *run_dir)
{
	struct sockaddr_un addr;
	int fd;

	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	if ((size_t)snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/wshd.sock", run_dir) >=
	    sizeof(addr.sun_path)) {
		fprintf(stderr, "wshd: socket path %s/wshd.sock is too long\n", run_dir);
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "wshd: socket: %s\n", strerror(errno));
		return -1;
	}
	if (unlink(addr.sun_path) < 0 && errno != ENOENT) {
		fprintf(stderr, "wshd: unlink %s: %s\n", addr.sun_path, strerror(errno));
		goto fail;
	}
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		fprintf(stderr, "wshd: bind %s: %s\n", addr.sun_path, strerror(errno));
		goto fail;
	}
	/* Only root on the host may run things in the container. */
	if (chmod(addr.sun_path, 0600) < 0) {
		fprintf(stderr, "wshd: chmod %s: %s\n", addr.sun_path, strerror(errno));
		goto fail;
	}
	if (listen(fd, 128) < 0) {
		fprintf(stderr, "wshd: listen: %s\n", strerror(errno));
		goto fail;
	}
	return fd;
fail:
	close_quietly(fd);
	return -1;
}

static int reset_signals(void)
{
	sigset_t none;

	if (signal(SIGCHLD, SIG_DFL) == SIG_ERR || signal(SIGPIPE, SIG_DFL) == SIG_ERR)
		return -1;
	if (sigemptyset(&none) < 0 || sigprocmask(SIG_SETMASK, &none, NULL) < 0)
		return -1;
	return 0;
}

/* An executable, anonymous copy of ourselves, or our own file as fallback. */
static int open_exe_copy(void)
{
	int src, mem;
	struct stat st;
	off_t done = 0;

	src = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (src < 0) {
		fprintf(stderr, "wshd: open /proc/self/exe: %s\n", strerror(errno));
		return -1;
	}
	mem = memfd_create("wshd", MFD_CLOEXEC | MFD_EXEC);
	if (mem < 0 && errno == EINVAL)
		mem = memfd_create("wshd", MFD_CLOEXEC);
	if (mem < 0 || fstat(src, &st) < 0)
		goto fallback;
	while (done < st.st_size) {
		ssize_t n = sendfile(mem, src, NULL, (size_t)(st.st_size - done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto fallback;
		done += n;
	}
	close(src);
	return mem;
fallback:
	fprintf(stderr, "wshd: warning: no in-memory copy (%s); re-exec from the file\n",
		strerror(errno));
	close_quietly(mem);
	return src;
}

__attribute__((format(printf, 1, 2)))
static _Noreturn void init_fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "wshd: container init: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static int init_main(void *opaque)
{
	const struct init_args *a = opaque;
	const struct config *cfg = a->cfg;
	char err[512], old_lib[PATH_MAX + 8], fdbuf[4][16];
	char *argv[7];
	extern char **environ;
	int created_mnt = 1, jobs_fd;
	pid_t host_pid;
	char go;
	ssize_t n;

	close(a->go_write);
	close(a->ready_read);
	n = read_retry(a->go_read, &go, 1);
	if (n != 1)
		init_fail("the launcher went away before releasing us");
	close(a->go_read);

	if (run_hook(cfg->lib, "hook-child-before-pivot.sh", err, sizeof(err)) < 0)
		init_fail("%s", err);

	/* Still the host's /proc: /proc/self is our pid out there. */
	n = readlink("/proc/self", fdbuf[3], sizeof(fdbuf[3]) - 1);
	if (n <= 0)
		init_fail("readlink /proc/self: %s", n < 0 ? strerror(errno) : "empty");
	fdbuf[3][n] = '\0';
	host_pid = (pid_t)parse_fd_number(fdbuf[3]);
	if (host_pid <= 0)
		init_fail("readlink /proc/self: unexpected \"%s\"", fdbuf[3]);
	jobs_fd = open(cfg->jobs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (jobs_fd < 0)
		init_fail("open %s: %s", cfg->jobs, strerror(errno));

	if (chdir(cfg->root) < 0)
		init_fail("chdir %s: %s", cfg->root, strerror(errno));
	if (mkdir("mnt", 0700) < 0) {
		if (errno != EEXIST)
			init_fail("mkdir %s/mnt: %s", cfg->root, strerror(errno));
		created_mnt = 0;
	}
	if (syscall(SYS_pivot_root, ".", "mnt") < 0)
		init_fail("pivot_root into %s: %s", cfg->root, strerror(errno));
	if (chdir("/") < 0)
		init_fail("chdir /: %s", strerror(errno));

	snprintf(old_lib, sizeof(old_lib), "/mnt%s", cfg->lib);
	if (run_hook(old_lib, "hook-child-after-pivot.sh", err, sizeof(err)) < 0)
		init_fail("%s", err);

	if (umount2("/mnt", MNT_DETACH) < 0)
		init_fail("detaching the old root at /mnt: %s", strerror(errno));
	if (created_mnt && rmdir("/mnt") < 0)
		init_fail("rmdir /mnt: %s", strerror(errno));

	if (set_cloexec(a->listen_fd, 0) < 0 || set_cloexec(a->ready_write, 0) < 0 ||
	    set_cloexec(jobs_fd, 0) < 0)
		init_fail("fcntl: %s", strerror(errno));
	snprintf(fdbuf[0], sizeof(fdbuf[0]), "%d", a->listen_fd);
	snprintf(fdbuf[1], sizeof(fdbuf[1]), "%d", a->ready_write);
	snprintf(fdbuf[2], sizeof(fdbuf[2]), "%d", jobs_fd);
	argv[0] = (char *)(cfg->title != NULL ? cfg->title : "wshd");
	argv[1] = "--serve";
	argv[2] = fdbuf[0];
	argv[3] = fdbuf[1];
	argv[4] = fdbuf[2];
	argv[5] = fdbuf[3];
	argv[6] = NULL;
	fexecve(a->exe_fd, argv, environ);
	init_fail("re-exec: %s", strerror(errno));
}

static int launch(int argc, char **argv)
{
	struct config cfg;
	struct init_args a;
	int go[2], ready[2];
	char err[512], pidbuf[16];
	char *stack;
	pid_t pid;
	char byte;
	ssize_t n;
	int wstatus;

	if (sane_stdio() < 0 || cloexec_inherited_fds() < 0) {
		fprintf(stderr, "wshd: preparing descriptors: %s\n", strerror(errno));
		return 1;
	}
	/* Whatever our caller ignored or blocked, hooks and the init start clean
	 * (an ignored SIGCHLD would even break waiting for the hooks). */
	if (reset_signals() < 0) {
		fprintf(stderr, "wshd: resetting signals: %s\n", strerror(errno));
		return 1;
	}
	if (parse_args(argc, argv, &cfg) < 0) {
		usage(stderr);
		return 1;
	}
	if (getenv("PATH") == NULL && setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin", 1) < 0) {
		fprintf(stderr, "wshd: setenv: %s\n", strerror(errno));
		return 1;
	}

	a.cfg = &cfg;
	a.listen_fd = make_listener(cfg.run);
	if (a.listen_fd < 0)
		return 1;
	a.exe_fd = open_exe_copy();
	if (a.exe_fd < 0)
		return 1;
	if (pipe2(go, O_CLOEXEC) < 0 || pipe2(ready, O_CLOEXEC) < 0) {
		fprintf(stderr, "wshd: pipe: %s\n", strerror(errno));
		return 1;
	}
	a.go_read = go[0];
	a.go_write = go[1];
	a.ready_read = ready[0];
	a.ready_write = ready[1];

	if (unshare(CLONE_NEWNS) < 0) {
		fprintf(stderr, "wshd: unshare(CLONE_NEWNS): %s\n", strerror(errno));
		return 1;
	}
	/* Nothing mounted from here on may propagate back to the host, and
	 * pivot_root refuses shared mounts. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
		fprintf(stderr, "wshd: making mounts private: %s\n", strerror(errno));
		return 1;
	}

	if (run_hook(cfg.lib, "hook-parent-before-clone.sh", err, sizeof(err)) < 0) {
		fprintf(stderr, "wshd: %s\n", err);
		return 1;
	}

	stack = mmap(NULL, INIT_STACK_SIZE, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stack == MAP_FAILED) {
		fprintf(stderr, "wshd: mmap: %s\n", strerror(errno));
		return 1;
	}
	fflush(NULL);
	pid = clone(init_main, stack + INIT_STACK_SIZE,
		    CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC | SIGCHLD, &a);
	if (pid < 0) {
		fprintf(stderr, "wshd: clone: %s\n", strerror(errno));
		return 1;
	}
	close(go[0]);
	close(ready[1]);
	close(a.exe_fd);

	snprintf(pidbuf, sizeof(pidbuf), "%d", (int)pid);
	if (setenv("PID", pidbuf, 1) < 0) {
		fprintf(stderr, "wshd: setenv: %s\n", strerror(errno));
		goto kill_init;
	}
	if (run_hook(cfg.lib, "hook-parent-after-clone.sh", err, sizeof(err)) < 0) {
		fprintf(stderr, "wshd: %s\n", err);
		goto kill_init;
	}
	if (write_all(go[1], "G", 1) < 0) {
		fprintf(stderr, "wshd: releasing the container init: %s\n", strerror(errno));
		goto kill_init;
	}
	close(go[1]);

	n = read_retry(ready[0], &byte, 1);
	if (n == 1) {
		printf("wshd: container %s is up (pid %d)\n", cfg.title ? cfg.title : cfg.root, (int)pid);
		return 0;
	}
	if (n < 0)
		fprintf(stderr, "wshd: waiting for the container init: %s\n", strerror(errno));
	if (waitpid(pid, &wstatus, 0) == pid) {
		if (WIFEXITED(wstatus))
			fprintf(stderr, "wshd: the container init failed (exit status %d)\n",
				WEXITSTATUS(wstatus));
		else if (WIFSIGNALED(wstatus))
			fprintf(stderr, "wshd: the container init was killed by signal %d\n",
				WTERMSIG(wstatus));
	} else {
		fprintf(stderr, "wshd: the container init did not report ready\n");
	}
	return 1;

kill_init:
	if (kill(pid, SIGKILL) < 0)
		fprintf(stderr, "wshd: kill %d: %s\n", (int)pid, strerror(errno));
	(void)waitpid(pid, &wstatus, 0);
	return 1;
}

/* Replace what ps shows for us with title. */
static void set_title(int argc, char **argv, const char *title)
{
	char *start = argv[0], *end = argv[argc - 1] + strlen(argv[argc - 1]);
	size_t room = (size_t)(end - start), len = strlen(title);

	if (len > room)
		len = room;
	memmove(start, title, len);
	memset(start + len, 0, room - len + 1);
}

/* "--serve LISTEN_FD READY_FD [JOBS_FD HOST_PID]": without the jobs
 * directory job requests are refused (as in the serve-loop tests). */
static int serve_main(int argc, char **argv)
{
	struct stat st;
	int listen_fd, ready_fd, jobs_fd = -1, devnull;
	pid_t host_pid = getpid();
	char title[TITLE_MAX + 1];

	if (argc != 4 && argc != 6) {
		fprintf(stderr, "wshd: --serve is internal\n");
		return 1;
	}
	listen_fd = parse_fd_number(argv[2]);
	ready_fd = parse_fd_number(argv[3]);
	if (listen_fd < 0 || fstat(listen_fd, &st) < 0 || !S_ISSOCK(st.st_mode) || ready_fd < 0 ||
	    fstat(ready_fd, &st) < 0 || !S_ISFIFO(st.st_mode)) {
		fprintf(stderr, "wshd: --serve: bad descriptors\n");
		return 1;
	}
	if (argc == 6) {
		jobs_fd = parse_fd_number(argv[4]);
		host_pid = (pid_t)parse_fd_number(argv[5]);
		if (jobs_fd < 0 || fstat(jobs_fd, &st) < 0 || !S_ISDIR(st.st_mode) || host_pid <= 0) {
			fprintf(stderr, "wshd: --serve: bad jobs directory or pid\n");
			return 1;
		}
		if (set_cloexec(jobs_fd, 1) < 0) {
			fprintf(stderr, "wshd: fcntl: %s\n", strerror(errno));
			return 1;
		}
	}
	if (set_cloexec(listen_fd, 1) < 0 || set_cloexec(ready_fd, 1) < 0) {
		fprintf(stderr, "wshd: fcntl: %s\n", strerror(errno));
		return 1;
	}
	/* The container's own /dev/null from now on. */
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0 || dup2(devnull, STDIN_FILENO) < 0) {
		fprintf(stderr, "wshd: /dev/null: %s\n", strerror(errno));
		return 1;
	}
	close(devnull);
	if (setsid() < 0 && getsid(0) != getpid()) {
		fprintf(stderr, "wshd: setsid: %s\n", strerror(errno));
		return 1;
	}
	/* We hold a host directory descriptor: keep /proc/1/fd closed to
	 * container processes that lack CAP_SYS_PTRACE. */
	if (jobs_fd >= 0 && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		fprintf(stderr, "wshd: prctl(PR_SET_DUMPABLE): %s\n", strerror(errno));
	snprintf(title, sizeof(title), "%s", argv[0]);
	if (prctl(PR_SET_NAME, "wshd", 0, 0, 0) < 0)
		fprintf(stderr, "wshd: prctl(PR_SET_NAME): %s\n", strerror(errno));
	set_title(argc, argv, title);

	serve(listen_fd, ready_fd, jobs_fd, host_pid);
	return 1;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "--serve") == 0)
		return serve_main(argc, argv);
	return launch(argc, argv);
}
