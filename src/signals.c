#include "signals.h"

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

static void handled(sigset_t *mask)
{
	sigemptyset(mask);
	sigaddset(mask, SIGTERM);
	sigaddset(mask, SIGINT);
	sigaddset(mask, SIGHUP);
	sigaddset(mask, SIGUSR1);
}

int signals_block(void)
{
	sigset_t mask;
	handled(&mask);
	signal(SIGPIPE, SIG_IGN);
	return sigprocmask(SIG_BLOCK, &mask, NULL);
}

int signals_open(void)
{
	sigset_t mask;
	handled(&mask);
	if (signals_block() < 0)
		return -1;
	return signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
}

int signals_next(int fd)
{
	struct signalfd_siginfo si;
	return read(fd, &si, sizeof si) == (ssize_t)sizeof si ? (int)si.ssi_signo : 0;
}
