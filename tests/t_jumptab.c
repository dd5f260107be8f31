/*
 * Switch jump tables as relpoline sites (RELPOLINE_JUMP_TABLES=1, gcc): the
 * table's jump goes through a thunk, a jmp site with one target per case.
 * The test drives a 64-case switch in a patterned order, promotes the site
 * (a tree with RELPOLINE_STUB=tree, whatever the cost model picks with
 * auto), and checks every result against the same formula computed
 * without the switch, before and after promotion, and that a tail site
 * was seen and (tree) put on a tree stub.
 */
#include "common.h"

static NOINLINE uint32_t sw(unsigned op, uint32_t x)
{
	switch (op) {
	case 0: return (x * 3u) ^ (x >> 1) ^ 0u;
	case 1: return (x * 5u) ^ (x >> 2) ^ 7919u;
	case 2: return (x * 7u) ^ (x >> 3) ^ 15838u;
	case 3: return (x * 9u) ^ (x >> 4) ^ 23757u;
	case 4: return (x * 11u) ^ (x >> 5) ^ 31676u;
	case 5: return (x * 13u) ^ (x >> 6) ^ 39595u;
	case 6: return (x * 15u) ^ (x >> 7) ^ 47514u;
	case 7: return (x * 17u) ^ (x >> 8) ^ 55433u;
	case 8: return (x * 19u) ^ (x >> 9) ^ 63352u;
	case 9: return (x * 21u) ^ (x >> 10) ^ 71271u;
	case 10: return (x * 23u) ^ (x >> 11) ^ 79190u;
	case 11: return (x * 25u) ^ (x >> 12) ^ 87109u;
	case 12: return (x * 27u) ^ (x >> 13) ^ 95028u;
	case 13: return (x * 29u) ^ (x >> 1) ^ 102947u;
	case 14: return (x * 31u) ^ (x >> 2) ^ 110866u;
	case 15: return (x * 33u) ^ (x >> 3) ^ 118785u;
	case 16: return (x * 35u) ^ (x >> 4) ^ 126704u;
	case 17: return (x * 37u) ^ (x >> 5) ^ 134623u;
	case 18: return (x * 39u) ^ (x >> 6) ^ 142542u;
	case 19: return (x * 41u) ^ (x >> 7) ^ 150461u;
	case 20: return (x * 43u) ^ (x >> 8) ^ 158380u;
	case 21: return (x * 45u) ^ (x >> 9) ^ 166299u;
	case 22: return (x * 47u) ^ (x >> 10) ^ 174218u;
	case 23: return (x * 49u) ^ (x >> 11) ^ 182137u;
	case 24: return (x * 51u) ^ (x >> 12) ^ 190056u;
	case 25: return (x * 53u) ^ (x >> 13) ^ 197975u;
	case 26: return (x * 55u) ^ (x >> 1) ^ 205894u;
	case 27: return (x * 57u) ^ (x >> 2) ^ 213813u;
	case 28: return (x * 59u) ^ (x >> 3) ^ 221732u;
	case 29: return (x * 61u) ^ (x >> 4) ^ 229651u;
	case 30: return (x * 63u) ^ (x >> 5) ^ 237570u;
	case 31: return (x * 65u) ^ (x >> 6) ^ 245489u;
	case 32: return (x * 67u) ^ (x >> 7) ^ 253408u;
	case 33: return (x * 69u) ^ (x >> 8) ^ 261327u;
	case 34: return (x * 71u) ^ (x >> 9) ^ 269246u;
	case 35: return (x * 73u) ^ (x >> 10) ^ 277165u;
	case 36: return (x * 75u) ^ (x >> 11) ^ 285084u;
	case 37: return (x * 77u) ^ (x >> 12) ^ 293003u;
	case 38: return (x * 79u) ^ (x >> 13) ^ 300922u;
	case 39: return (x * 81u) ^ (x >> 1) ^ 308841u;
	case 40: return (x * 83u) ^ (x >> 2) ^ 316760u;
	case 41: return (x * 85u) ^ (x >> 3) ^ 324679u;
	case 42: return (x * 87u) ^ (x >> 4) ^ 332598u;
	case 43: return (x * 89u) ^ (x >> 5) ^ 340517u;
	case 44: return (x * 91u) ^ (x >> 6) ^ 348436u;
	case 45: return (x * 93u) ^ (x >> 7) ^ 356355u;
	case 46: return (x * 95u) ^ (x >> 8) ^ 364274u;
	case 47: return (x * 97u) ^ (x >> 9) ^ 372193u;
	case 48: return (x * 99u) ^ (x >> 10) ^ 380112u;
	case 49: return (x * 101u) ^ (x >> 11) ^ 388031u;
	case 50: return (x * 103u) ^ (x >> 12) ^ 395950u;
	case 51: return (x * 105u) ^ (x >> 13) ^ 403869u;
	case 52: return (x * 107u) ^ (x >> 1) ^ 411788u;
	case 53: return (x * 109u) ^ (x >> 2) ^ 419707u;
	case 54: return (x * 111u) ^ (x >> 3) ^ 427626u;
	case 55: return (x * 113u) ^ (x >> 4) ^ 435545u;
	case 56: return (x * 115u) ^ (x >> 5) ^ 443464u;
	case 57: return (x * 117u) ^ (x >> 6) ^ 451383u;
	case 58: return (x * 119u) ^ (x >> 7) ^ 459302u;
	case 59: return (x * 121u) ^ (x >> 8) ^ 467221u;
	case 60: return (x * 123u) ^ (x >> 9) ^ 475140u;
	case 61: return (x * 125u) ^ (x >> 10) ^ 483059u;
	case 62: return (x * 127u) ^ (x >> 11) ^ 490978u;
	case 63: return (x * 129u) ^ (x >> 12) ^ 498897u;
	default: return 0;
	}
}

static uint32_t ref(unsigned op, uint32_t x)
{
	return (x * (2 * op + 3)) ^ (x >> (op % 13 + 1)) ^ (op * 7919u);
}

static long wrong;

static void run(unsigned n, unsigned salt)
{
	unsigned op = salt % 64;
	for (unsigned i = 0; i < n; i++) {
		uint32_t x = i * 2654435761u + salt;
		if (sw(op, x) != ref(op, x))
			wrong++;
		/* a fixed walk with a few detours: predictable, as interpreter dispatch is */
		op = (i % 17 == 5) ? (op * 5 + salt) % 64 : (op * 7 + 3) % 64;
	}
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	const char *want_tree = getenv("T_WANT_TREE");
	run(20000, 1);
	t_epoch();
	run(20000, 2);
	t_epoch();
	run(200000, 3);
	struct relpoline_stats s = t_stats();
	t_print_stats("after", &s);
	CHECK(wrong == 0, "%ld wrong results", wrong);
	CHECK(s.sites_tail >= 1, "no tail site seen: was the jump table built (RELPOLINE_JUMP_TABLES=1)?");
	if (want_tree && *want_tree == '1')
		CHECK(s.sites_tree >= 1, "the jump table's site is not on a tree (sites_tree %" PRIu64 ")",
		      s.sites_tree);
	CHECK(s.sites_promoted + s.sites_pinned >= 1, "the site was never decided");
	return t_finish("t_jumptab");
}
