/*
 * libFuzzer target: the configuration loader (src/config*.c) and libyaml underneath it.
 *
 * Input: the bytes of a configuration file, as is. They are written to a memfd and
 * loaded through /proc/self/fd/N, so config_load reads a real file without touching the
 * disk. A few environment variables are set once, so that ${FUZZ_HOST}-style references
 * expand (and ${FUZZ_UNSET} reports an error): the seeds use these names, and those
 * copied from config/ and tests/fixtures/config/ use OUTBOX_FIXTURES and DEMO_*_PORT.
 *
 * Checked beyond "no crash, no leak": every error is exactly one line (config.h says so),
 * and a loaded configuration compared with itself has nothing that needs a restart.
 *
 * Keys naming files (password_file, tls.ca_file...) are opened as given; run the
 * fuzzer with stdin redirected from /dev/null so that "/dev/stdin" cannot block it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(int ok, const char *what)
{
	if (ok)
		return;
	fprintf(stderr, "fuzz_config: broken promise: %s\n", what);
	abort();
}

/* Deliberate global state: the environment, set once and never changed by a run. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	setenv("FUZZ_HOST", "broker.example", 1);
	setenv("FUZZ_PORT", "8883", 1);
	setenv("FUZZ_EMPTY", "", 1);
	setenv("FUZZ_BRACES", "${FUZZ_HOST}", 1); /* expanded once, not recursively */
	unsetenv("FUZZ_UNSET");
	/* So that the copied seeds load completely and reach the success path. */
	setenv("OUTBOX_FIXTURES", FIXTURES_DIR, 1);
	setenv("DEMO_PG_PORT", "5432", 1);
	setenv("DEMO_MQTT_PORT", "1883", 1);
	return 0;
}

/* A memfd holding the input; its /proc path goes into path. Returns the fd or -1. */
static int input_file(const uint8_t *data, size_t size, char *path, size_t pathlen)
{
	int fd = memfd_create("fuzz_config", MFD_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t done = 0;
	while (done < size) {
		ssize_t n = write(fd, data + done, size - done);
		if (n <= 0) {
			close(fd);
			return -1;
		}
		done += (size_t)n;
	}
	snprintf(path, pathlen, "/proc/self/fd/%d", fd);
	return fd;
}

static size_t count_lines(const char *text, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		n += text[i] == '\n';
	return n;
}

static void no_restart_needed(void *ctx, const char *path)
{
	(void)ctx;
	fprintf(stderr, "fuzz_config: %s differs from itself\n", path);
	abort();
}

static void load(const char *path)
{
	char *errors = NULL;
	size_t errors_len = 0;
	FILE *errs = open_memstream(&errors, &errors_len);
	require(errs != NULL, "open_memstream");
	struct config cfg;
	int nerrors = config_load(path, &cfg, errs);
	fclose(errs);
	require(nerrors >= 0, "config_load returns an error count");
	require(count_lines(errors, errors_len) == (size_t)nerrors, "one line per error");
	require(errors_len == 0 || errors[errors_len - 1] == '\n', "errors end with a newline");
	free(errors);
	if (nerrors)
		return;
	require(cfg.nroutes > 0 && cfg.broker.nhosts > 0, "a loaded file has routes and brokers");
	(void)config_holds_password(&cfg);
	config_restart_changes(&cfg, &cfg, no_restart_needed, NULL);
	config_finish(&cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64];
	int fd = input_file(data, size, path, sizeof path);
	require(fd >= 0, "memfd_create and write");
	load(path);
	close(fd);
	return 0;
}
