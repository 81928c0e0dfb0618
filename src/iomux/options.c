#include "options.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "util.h"

static const char usage_text[] =
	"usage: iomux-spawn [options] JOBDIR -- CMD [ARGS...]\n"
	"  -i FILE        the command's stdin (default " DEFAULT_STDIN_PATH ")\n"
	"  -C DIR         run the command in DIR\n"
	"  -l BYTES       keep at most BYTES of output, then kill the job (0: no limit)\n"
	"  -d             discard output\n"
	"  -t TAG         copy output lines to syslog with this tag\n"
	"  -s PATH        syslog socket (default " DEFAULT_SYSLOG_PATH ")\n"
	"  -r NAME=VALUE  set resource limit NAME (nofile, nproc, as, ...) for the command\n";

static int usage_error(const char *problem, const char *detail)
{
	if (detail != NULL)
		fprintf(stderr, "iomux-spawn: %s: %s\n", problem, detail);
	else
		fprintf(stderr, "iomux-spawn: %s\n", problem);
	fputs(usage_text, stderr);
	return -1;
}

int spawn_options_parse(int argc, char **argv, struct spawn_options *options)
{
	memset(options, 0, sizeof(*options));
	options->stdin_path = DEFAULT_STDIN_PATH;
	options->syslog_path = DEFAULT_SYSLOG_PATH;

	int opt;
	opterr = 0;
	/* "+": options end at JOBDIR, so nothing after it is ever reordered. */
	while ((opt = getopt(argc, argv, "+:i:C:l:dt:s:r:")) != -1) {
		switch (opt) {
		case 'i':
			options->stdin_path = optarg;
			break;
		case 'C':
			options->work_dir = optarg;
			break;
		case 'l':
			if (parse_u64(optarg, &options->output_limit) < 0)
				return usage_error("invalid output limit", optarg);
			break;
		case 'd':
			options->discard_output = true;
			break;
		case 't':
			if (optarg[0] == '\0')
				return usage_error("empty syslog tag", NULL);
			options->syslog_tag = optarg;
			break;
		case 's':
			if (strlen(optarg) >= sizeof(((struct sockaddr_un *)0)->sun_path))
				return usage_error("syslog socket path too long", optarg);
			options->syslog_path = optarg;
			break;
		case 'r':
			if (options->rlimit_count == MAX_RLIMIT_SETTINGS)
				return usage_error("too many -r options", NULL);
			if (rlimit_setting_parse(optarg, &options->rlimits[options->rlimit_count]) < 0)
				return usage_error("invalid resource limit", optarg);
			options->rlimit_count++;
			break;
		case ':':
			fprintf(stderr, "iomux-spawn: option -%c needs a value\n", optopt);
			fputs(usage_text, stderr);
			return -1;
		default:
			fprintf(stderr, "iomux-spawn: unknown option -%c\n", optopt);
			fputs(usage_text, stderr);
			return -1;
		}
	}

	if (optind >= argc)
		return usage_error("missing JOBDIR", NULL);
	options->job_dir = argv[optind++];
	if (options->job_dir[0] == '\0')
		return usage_error("empty JOBDIR", NULL);
	if (optind >= argc || strcmp(argv[optind], "--") != 0)
		return usage_error("expected -- after JOBDIR", NULL);
	optind++;
	if (optind >= argc)
		return usage_error("missing command", NULL);
	options->command = argv + optind;
	return 0;
}
