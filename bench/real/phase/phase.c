/*
 * Phase-change benchmark for relpoline.
 *
 * Four indirect call sites, each calling through its own small target table.
 * In phase 1 every site dispatches among three targets of set A (skewed
 * 90/7/3: one dominant target, as profile-guided indirect-call
 * promotion needs); at the halfway point the tables are switched to set B, twelve
 * different functions, with the same skew.  Profile-guided devirtualization
 * trained on phase 1 only has promoted the wrong targets for phase 2; a
 * run-time scheme can relearn.  The targets are small and not marked
 * noinline: GCC keeps an indirect-call promotion only where it can inline
 * the promoted target (its speculation_useful_p), so this is PGO's best case
 * in phase 1.
 *
 *   phase [-n ITERS_PER_PHASE] [-p PHASES] [-w WINDOWS]
 *     -n  loop iterations per phase (each iteration = 4 indirect calls);
 *         default 20000000
 *     -p  "12" (default) runs phase 1 then phase 2; "1" only phase 1
 *         (the PGO training run)
 *     -w  throughput windows reported per phase (default 10)
 *
 * Output, one record per line:
 *   phase P calls N seconds S mcalls_per_s R
 *   window P W mcalls_per_s R
 *   checksum X          (identical for every build: a correctness check)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef unsigned long (*op_t)(unsigned long, unsigned long);

#define OP(n, expr) \
	unsigned long f##n(unsigned long x, unsigned long k) \
	{ __asm__ volatile("" : "+r"(x)); return (expr); }
OP(0,  x * 3 + k)
OP(1,  (x ^ (k << 1)) + 7)
OP(2,  x + (k | 1))
OP(3,  (x >> 1) ^ (x << 3) ^ k)
OP(4,  x * 5 - k)
OP(5,  (x ^ 0x9e3779b9ul) + k)
OP(6,  x - (k ^ 0x55))
OP(7,  (x << 2) + (x >> 5) + k)
OP(8,  x * 7 + (k >> 1))
OP(9,  (x ^ k) * 3)
OP(10, x + (k << 2) + 1)
OP(11, (x >> 3) + (x << 1) - k)
OP(12, x * 9 ^ k)
OP(13, (x + k) ^ 0x1234567ul)
OP(14, x - (k << 3) + 11)
OP(15, (x << 1) ^ (k + 3))
OP(16, x * 11 + k + 5)
OP(17, (x ^ (k >> 2)) + 13)
OP(18, x + (k * 3))
OP(19, (x >> 2) ^ (x << 4) ^ (k + 1))
OP(20, x * 13 - (k ^ 3))
OP(21, (x ^ 0x7f4a7c15ul) + (k << 1))
OP(22, x - (k ^ 0xaa) + 2)
OP(23, (x << 3) + (x >> 7) + k)

/* Writable, so the compiler cannot see the targets statically. */
op_t set_a[4][3] = {
	{ f0, f1, f2 }, { f3, f4, f5 }, { f6, f7, f8 }, { f9, f10, f11 } };
op_t set_b[4][3] = {
	{ f12, f13, f14 }, { f15, f16, f17 }, { f18, f19, f20 }, { f21, f22, f23 } };
op_t site_tbl[4][3];

#define NSEL 4096
static unsigned char sel[4][NSEL];

/* One indirect call each, in separate functions: four distinct call sites. */
__attribute__((noinline)) unsigned long site0(unsigned long x, unsigned i) { return site_tbl[0][sel[0][i & (NSEL - 1)]](x, i); }
__attribute__((noinline)) unsigned long site1(unsigned long x, unsigned i) { return site_tbl[1][sel[1][i & (NSEL - 1)]](x, i); }
__attribute__((noinline)) unsigned long site2(unsigned long x, unsigned i) { return site_tbl[2][sel[2][i & (NSEL - 1)]](x, i); }
__attribute__((noinline)) unsigned long site3(unsigned long x, unsigned i) { return site_tbl[3][sel[3][i & (NSEL - 1)]](x, i); }

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	unsigned long n = 20000000, x = 1;
	const char *phases = "12";
	int windows = 10;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-n") && i + 1 < argc) n = strtoul(argv[++i], 0, 0);
		else if (!strcmp(argv[i], "-p") && i + 1 < argc) phases = argv[++i];
		else if (!strcmp(argv[i], "-w") && i + 1 < argc) windows = atoi(argv[++i]);
		else { fprintf(stderr, "usage: %s [-n ITERS] [-p 12|1|2] [-w WINDOWS]\n", argv[0]); return 2; }
	}
	if (windows < 1) windows = 1;
	unsigned long long r = 88172645463325252ull;
	for (int s = 0; s < 4; s++)
		for (int i = 0; i < NSEL; i++) {
			r ^= r << 13; r ^= r >> 7; r ^= r << 17;
			unsigned v = r % 100;
			sel[s][i] = v < 90 ? 0 : v < 97 ? 1 : 2;
		}
	for (const char *p = phases; *p; p++) {
		int ph = *p - '0';
		if (ph != 1 && ph != 2) { fprintf(stderr, "bad phase %c\n", *p); return 2; }
		memcpy(site_tbl, ph == 1 ? set_a : set_b, sizeof site_tbl);
		unsigned long per = n / windows;
		double t0 = now(), tw = t0;
		unsigned i = 0;
		for (int w = 0; w < windows; w++) {
			for (unsigned long j = 0; j < per; j++, i++) {
				x = site0(x, i);
				x = site1(x, i);
				x = site2(x, i);
				x = site3(x, i);
			}
			double t = now();
			printf("window %d %d mcalls_per_s %.3f\n", ph, w + 1, 4.0 * per / (t - tw) / 1e6);
			tw = t;
		}
		double dt = now() - t0;
		printf("phase %d calls %lu seconds %.6f mcalls_per_s %.3f\n", ph, 4 * per * windows, dt,
		       4.0 * per * windows / dt / 1e6);
		fflush(stdout);
	}
	printf("checksum %#lx\n", x);
	return 0;
}
