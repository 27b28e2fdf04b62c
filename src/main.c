/* outbox-relay: command line, configuration, and the run. */
#include <getopt.h>
#include <libpq-fe.h>
#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#include "build_config.h"
#include "client.h"
#include "config.h"
#include "log.h"
#include "outbox.h"
#include "relay.h"
#include "signals.h"

struct options {
	const char *config_path;
	bool check;
	bool drain;
	const char *log_level;
	struct client_options client; /* --backfill, --redrive, --requests and theirs */
};

static void usage(FILE *f)
{
	fprintf(f, "usage: outbox-relay [-c FILE] [--check] [--drain] [-l LEVEL] [--version] [--help]\n"
	           "       outbox-relay [-c FILE] --backfill ROUTE [--where SQL] [--wait]\n"
	           "       outbox-relay [-c FILE] --redrive [--id N[,N...]]... [--wait]\n"
	           "       outbox-relay [-c FILE] --requests\n"
	           "\n"
	           "Publishes committed PostgreSQL outbox rows to MQTT, exactly once in bookkeeping.\n"
	           "\n"
	           "  -c, --config FILE     configuration file (default " CONFIG_DEFAULT_PATH ")\n"
	           "      --check           validate the configuration and exit\n"
	           "      --drain           publish everything committed before start, then exit\n"
	           "  -l, --log-level LEVEL error, warn, info or debug (overrides the file)\n"
	           "      --version         print the version and exit\n"
	           "  -h, --help            print this help and exit\n"
	           "\n"
	           "Requests, queued in the bookkeeping schema for the relay of the file's slot:\n"
	           "      --backfill ROUTE  publish the rows of a routed table (schema.table or table)\n"
	           "      --where SQL       only the rows matching this condition\n"
	           "      --redrive         publish the slot's dead letters again\n"
	           "      --id N[,N...]     only these dead letters (repeatable)\n"
	           "      --requests        list the slot's requests and exit\n"
	           "      --wait            follow the request queued until it is done (0) or failed (1)\n");
}

/* The version, and the libraries this binary runs with: what a bug report needs. */
static void print_version(void)
{
	int pq = PQlibVersion(); /* 150005 for 15.5; 90624 for 9.6.24 */
	int major, minor, revision;
	mosquitto_lib_version(&major, &minor, &revision);
	printf("outbox-relay %s\n", OUTBOX_RELAY_VERSION);
	if (pq >= 100000)
		printf("libpq %d.%d\n", pq / 10000, pq % 10000);
	else
		printf("libpq %d.%d.%d\n", pq / 10000, pq / 100 % 100, pq % 100);
	printf("libmosquitto %d.%d.%d\n", major, minor, revision);
	printf("libyaml %s\n", yaml_get_version_string());
	printf("systemd support: %s\n", HAVE_LIBSYSTEMD ? "yes" : "no (built without libsystemd)");
}

/* Returns -1 to exit with status *exit_status, 0 to go on. */
static int parse_args(int argc, char **argv, struct options *o, int *exit_status)
{
	enum {
		OPT_CHECK = 256,
		OPT_DRAIN,
		OPT_VERSION,
		OPT_BACKFILL,
		OPT_WHERE,
		OPT_REDRIVE,
		OPT_ID,
		OPT_REQUESTS,
		OPT_WAIT
	};
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, OPT_CHECK },
		{ "drain", no_argument, NULL, OPT_DRAIN },
		{ "backfill", required_argument, NULL, OPT_BACKFILL },
		{ "where", required_argument, NULL, OPT_WHERE },
		{ "redrive", no_argument, NULL, OPT_REDRIVE },
		{ "id", required_argument, NULL, OPT_ID },
		{ "requests", no_argument, NULL, OPT_REQUESTS },
		{ "wait", no_argument, NULL, OPT_WAIT },
		{ "log-level", required_argument, NULL, 'l' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	o->config_path = CONFIG_DEFAULT_PATH;
	while ((c = getopt_long(argc, argv, "c:l:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': o->config_path = optarg; break;
		case 'l': o->log_level = optarg; break;
		case OPT_CHECK: o->check = true; break;
		case OPT_DRAIN: o->drain = true; break;
		case OPT_BACKFILL:
			o->client.command = CLIENT_BACKFILL;
			o->client.ncommands++;
			o->client.route = optarg;
			break;
		case OPT_WHERE: o->client.where = optarg; break;
		case OPT_REDRIVE:
			o->client.command = CLIENT_REDRIVE;
			o->client.ncommands++;
			break;
		case OPT_ID:
			if (client_add_ids(&o->client, optarg) < 0) {
				*exit_status = EXIT_USAGE;
				return -1;
			}
			break;
		case OPT_REQUESTS:
			o->client.command = CLIENT_REQUESTS;
			o->client.ncommands++;
			break;
		case OPT_WAIT: o->client.wait = true; break;
		case OPT_VERSION:
			print_version();
			*exit_status = EXIT_CLEAN;
			return -1;
		case 'h':
			usage(stdout);
			*exit_status = EXIT_CLEAN;
			return -1;
		default:
			usage(stderr);
			*exit_status = EXIT_USAGE;
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "outbox-relay: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		*exit_status = EXIT_USAGE;
		return -1;
	}
	if (o->client.command != CLIENT_NONE && (o->check || o->drain)) {
		fprintf(stderr, "outbox-relay: --%s cannot be combined with --check or --drain\n",
		        o->client.command == CLIENT_BACKFILL  ? "backfill"
		        : o->client.command == CLIENT_REDRIVE ? "redrive"
		                                              : "requests");
		*exit_status = EXIT_USAGE;
		return -1;
	}
	if (client_check_options(&o->client) < 0) {
		*exit_status = EXIT_USAGE;
		return -1;
	}
	return 0;
}

/* A password in a file others can read is a secret no longer. */
static void warn_if_exposed(const struct config *cfg)
{
	struct stat st;
	if (!config_holds_password(cfg) || stat(cfg->path, &st) < 0 || !(st.st_mode & S_IROTH))
		return;
	log_warn("the configuration file holds a password and is readable by others; chmod o-r it, or use"
	         " source.password_file",
	         "config", cfg->path);
}

static int apply_log_level(const struct options *o, const struct config *cfg)
{
	enum log_level level = cfg->log.level;
	if (o->log_level && log_level_parse(o->log_level, &level) < 0) {
		fprintf(stderr,
		        "outbox-relay: --log-level: expected error, warn, info or debug, got \"%s\"\n",
		        o->log_level);
		return -1;
	}
	log_set_level(level);
	log_set_format(cfg->log.format);
	return 0;
}

int main(int argc, char **argv)
{
	struct options opts = { 0 };
	struct config cfg;
	int status;

	if (parse_args(argc, argv, &opts, &status) < 0) {
		client_options_finish(&opts.client);
		return status;
	}
	/* The client stops on a signal as any command does: only the relay takes them in turn. */
	bool client = opts.client.command != CLIENT_NONE;
	if (!opts.check && !client && signals_block() < 0)
		perror("outbox-relay: blocking signals");
	log_detect_journal();
	if (config_load(opts.config_path, &cfg, stderr) > 0) {
		client_options_finish(&opts.client);
		return EXIT_CONFIG;
	}
	struct outbox *outbox = outbox_new(&cfg, stderr);
	if (!outbox) {
		config_finish(&cfg);
		client_options_finish(&opts.client);
		return EXIT_CONFIG;
	}
	if (apply_log_level(&opts, &cfg) < 0) {
		status = EXIT_USAGE;
	} else if (opts.check) {
		printf("configuration OK\n");
		status = EXIT_CLEAN;
	} else if (client) {
		status = client_run(&cfg, &opts.client);
	} else {
		mosquitto_lib_init();
		struct relay_options ropts = { .drain = opts.drain,
			                       .log_level_fixed = opts.log_level != NULL };
		log_info("starting", "version", OUTBOX_RELAY_VERSION, "config", cfg.path);
		warn_if_exposed(&cfg);
		status = relay_run(&cfg, &outbox, &ropts);
		mosquitto_lib_cleanup();
	}
	outbox_free(outbox);
	config_finish(&cfg);
	client_options_finish(&opts.client);
	return status;
}
