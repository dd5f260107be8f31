/*
 * Start-up timer for case 8: runs each program given on the command line
 * ROUNDS times, interleaved (A B C A B C ...), each as fork+exec+wait with
 * stdio on /dev/null, and prints "STARTUP <prog> <median us> <min us> <max us>".
 * Built plain: it must not itself depend on relpoline.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s ROUNDS PROG...\n", argv[0]);
		return 2;
	}
	int rounds = atoi(argv[1]), np = argc - 2;
	if (rounds < 1)
		rounds = 1;
	double *t = calloc((size_t)rounds * np, sizeof(double));
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	char **path = calloc(np, sizeof(char *)), ***envs = calloc(np, sizeof(char **));
	size_t nenv = 0;
	while (environ[nenv])
		nenv++;
	for (int p = 0; p < np; p++) {
		char *a = argv[2 + p], *at = strchr(a, '@');
		envs[p] = environ;
		path[p] = a;
		if (at && memchr(a, '=', (size_t)(at - a))) {
			char **e = calloc(nenv + 2, sizeof(char *));
			memcpy(e, environ, nenv * sizeof(char *));
			e[nenv] = strndup(a, (size_t)(at - a));
			envs[p] = e;
			path[p] = at + 1;
		}
	}
	for (int r = -1; r < rounds; r++)        /* round -1: warm the page cache */
		for (int p = 0; p < np; p++) {
			char *av[] = { path[p], NULL };
			pid_t pid;
			int st;
			uint64_t t0 = now_ns();
			if (posix_spawn(&pid, av[0], &fa, NULL, av, envs[p])) {
				perror(av[0]);
				return 1;
			}
			waitpid(pid, &st, 0);
			uint64_t t1 = now_ns();
			if (!WIFEXITED(st) || WEXITSTATUS(st)) {
				fprintf(stderr, "%s: exit status %d\n", av[0], st);
				return 1;
			}
			if (r >= 0)
				t[(size_t)p * rounds + r] = (t1 - t0) / 1e3;
		}
	for (int p = 0; p < np; p++) {
		double *v = t + (size_t)p * rounds;
		qsort(v, rounds, sizeof(*v), cmp_d);
		double med = rounds % 2 ? v[rounds / 2] : (v[rounds / 2 - 1] + v[rounds / 2]) / 2;
		printf("STARTUP %s %.1f %.1f %.1f\n", argv[2 + p], med, v[0], v[rounds - 1]);
	}
	return 0;
}
