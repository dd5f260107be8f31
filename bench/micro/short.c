/*
 * A short-lived program for the warm-start case (14): about 20 ms of
 * indirect calls under retpolines, then exit, as a compiler pass, a test
 * helper or a CGI worker would.  32 call sites: 16 with one target, 8
 * alternating between two, 8 cycling through six.
 *
 *   short              the work once; prints "WORK <ms>" (main's start to
 *                      the end of the work)
 *   short promoted     the same work 40 times first (relpoline: promoted,
 *                      with epochs run in between), then timed once: a
 *                      process that was already promoted
 * Built plain, with gcc's retpolines and with relpoline-cc (micro.mk).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <string.h>
#include <time.h>

#define ROUNDS 60000   /* x 32 calls: about 20 ms through retpolines */

typedef long (*fn_t)(long);
#define T(i) __attribute__((noinline, noipa)) static long t##i(long x) { return (x ^ i) + 1; }
T(0) T(1) T(2) T(3) T(4) T(5) T(6) T(7) T(8) T(9) T(10) T(11) T(12) T(13) T(14) T(15)
static fn_t volatile fns[16] = { t0, t1, t2, t3, t4, t5, t6, t7, t8, t9, t10, t11, t12, t13, t14, t15 };

#define S(k) __attribute__((noinline, noipa)) static long s##k(fn_t f, long x) { return f(x) + k; }
S(0) S(1) S(2) S(3) S(4) S(5) S(6) S(7) S(8) S(9) S(10) S(11) S(12) S(13) S(14) S(15)
S(16) S(17) S(18) S(19) S(20) S(21) S(22) S(23) S(24) S(25) S(26) S(27) S(28) S(29) S(30) S(31)

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

__attribute__((noinline)) static long work(void)
{
	fn_t f[16];
	for (int i = 0; i < 16; i++)
		f[i] = fns[i];
	long acc = 0;
	for (long r = 0; r < ROUNDS; r++) {
		fn_t a = f[r & 1 ? 1 : 2], b = f[3 + r % 6];
		acc = s0(f[0], acc); acc = s1(f[1], acc); acc = s2(f[2], acc); acc = s3(f[3], acc);
		acc = s4(f[4], acc); acc = s5(f[5], acc); acc = s6(f[6], acc); acc = s7(f[7], acc);
		acc = s8(f[8], acc); acc = s9(f[9], acc); acc = s10(f[10], acc); acc = s11(f[11], acc);
		acc = s12(f[12], acc); acc = s13(f[13], acc); acc = s14(f[14], acc); acc = s15(f[15], acc);
		acc = s16(a, acc); acc = s17(a, acc); acc = s18(a, acc); acc = s19(a, acc);
		acc = s20(a, acc); acc = s21(a, acc); acc = s22(a, acc); acc = s23(a, acc);
		acc = s24(b, acc); acc = s25(b, acc); acc = s26(b, acc); acc = s27(b, acc);
		acc = s28(b, acc); acc = s29(b, acc); acc = s30(b, acc); acc = s31(b, acc);
	}
	return acc;
}

int relpoline_epoch(void) __attribute__((weak));

int main(int argc, char **argv)
{
	double t0 = now_ms();
	long acc = 0;
	if (argc > 1 && !strcmp(argv[1], "promoted")) {
		for (int i = 0; i < 40; i++) {
			acc += work();
			if (relpoline_epoch)
				relpoline_epoch();
		}
		t0 = now_ms();
	}
	acc += work();
	printf("WORK %.3f %ld\n", now_ms() - t0, acc & 0xff);   /* the result keeps the work */
	return 0;
}
