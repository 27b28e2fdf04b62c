/*
 * bench_rusage: runs a command and writes its resource usage as JSON to a file.
 *
 *   bench_rusage OUTFILE COMMAND [ARG...]
 *
 * Writes {"status":S,"signal":N,"wall_us":W,"utime_us":U,"stime_us":S,"maxrss_kb":M}.
 * Why a C wrapper: Linux carries the peak RSS of the process image a child was forked
 * from into the child's ru_maxrss, so a child forked by Python reports Python's size.
 * Forked from this small program, ru_maxrss is the command's own peak (this wrapper's
 * ~1 MB being the floor). SIGTERM, SIGINT, SIGHUP, SIGUSR1 and SIGUSR2 are passed on.
 * Exits with the command's status (128+N when killed by signal N).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile pid_t child;

static void forward(int sig)
{
	if (child > 0)
		kill(child, sig);
}

static long long tv_us(struct timeval tv)
{
	return (long long)tv.tv_sec * 1000000 + tv.tv_usec;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: bench_rusage OUTFILE COMMAND [ARG...]\n");
		return 64;
	}
	struct sigaction sa = { .sa_handler = forward };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid_t pid = fork();
	if (pid < 0) {
		perror("bench_rusage: fork");
		return 1;
	}
	if (pid == 0) {
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		signal(SIGUSR1, SIG_DFL);
		signal(SIGUSR2, SIG_DFL);
		execvp(argv[2], argv + 2);
		perror("bench_rusage: exec");
		_exit(127);
	}
	child = pid;
	int status;
	struct rusage ru;
	while (wait4(pid, &status, 0, &ru) < 0) {
		if (errno != EINTR) {
			perror("bench_rusage: wait4");
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long long wall = (long long)(t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000;
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	FILE *f = fopen(argv[1], "w");
	if (!f) {
		perror("bench_rusage: output file");
		return 1;
	}
	fprintf(f,
	        "{\"status\":%d,\"signal\":%d,\"wall_us\":%lld,\"utime_us\":%lld,\"stime_us\":%lld,\"maxrss_"
	        "kb\":%ld}\n",
	        WIFEXITED(status) ? WEXITSTATUS(status) : -1, WIFSIGNALED(status) ? WTERMSIG(status) : 0,
	        wall, tv_us(ru.ru_utime), tv_us(ru.ru_stime), ru.ru_maxrss);
	fclose(f);
	return code;
}
