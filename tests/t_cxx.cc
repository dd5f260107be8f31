// C++ through relpoline-c++: virtual calls over two classes get promoted,
// every result is checked, and exceptions thrown by a target unwind through
// promoted sites (a stub never touches the stack).
//
// Two sites: call() is a tail call (jmp to the thunk: its frame is gone
// when the target runs), call_nt() a real call whose result is used after
// it returns and whose frame has a destructor to run when an exception
// unwinds through it.  Both must end up on a stub of their own (checked on
// the site bytes, sites.h); call_nt must push the right return address
// through its cell and stub, and an exception thrown by the target must
// unwind through call_nt's frame (its destructor runs) while promoted.
// Both targets are in both stubs, so after promotion nothing may miss.
#include <cstdio>
#include <stdexcept>
#include <memory>
#include <vector>
#include <relpoline.h>
#include "sites.h"

static int fails;
#define CHECK(c, ...) do { if (!(c)) { if (fails++ < 20) { std::fprintf(stderr, "%s:%d: check failed: %s: ", \
	__FILE__, __LINE__, #c); std::fprintf(stderr, __VA_ARGS__); std::fputc('\n', stderr); } } } while (0)

static const void *volatile d1_ret;   // return address D1::f last saw
struct B { virtual ~B(){} virtual long f(long x) = 0; };
struct D1 : B { __attribute__((noinline)) long f(long x) override {
	d1_ret = __builtin_return_address(0); return x + 1; } };
struct D2 : B { long f(long x) override { if (x == 777777) throw std::runtime_error("x"); return x + 2; } };
__attribute__((noinline)) long call(B *b, long x) { return b->f(x); }

static long guards;
struct Guard { ~Guard() { guards++; } };
__attribute__((noinline)) long call_nt(B *b, long x) { Guard g; long r = b->f(x); return r * 3 + 1; }

static relpoline_stats stats() { relpoline_stats s{}; s.size = sizeof s; relpoline_stats_get(&s); return s; }

static bool promoted(const ts_site &s) { return ts_is_stub_for(ts_dest(s.addr, nullptr), s.addr); }

int main() {
  ts_site tail = ts_one_site((const void *)call, "call");
  ts_site nt = ts_one_site((const void *)call_nt, "call_nt");
  if (!tail.addr || !nt.addr) return 1;
  CHECK(tail.kind == 'j', "call(): site is '%c', want a tail jmp", tail.kind);
  CHECK(nt.kind == 'c', "call_nt(): site is '%c', want a call", nt.kind);

  std::vector<std::unique_ptr<B>> v; v.emplace_back(new D1); v.emplace_back(new D2);
  long bad = 0, caught = 0, caught_nt = 0, calls_nt = 0;
  relpoline_epoch();   // the worker's first epoch (RELPOLINE_EPOCH_MS=0): tail sites learn from here
  relpoline_stats s1{};
  for (int r = 0; r < 4; r++) {
    for (long i = 0; i < 1000000; i++) {
      try { if (call(v[i & 1].get(), i) != i + 1 + (i & 1)) bad++; } catch (const std::exception &) { caught++; }
      if (i % 8 < 2) {   // both targets, fewer calls
        calls_nt++;
        try { if (call_nt(v[i & 1].get(), i) != (i + 1 + (i & 1)) * 3 + 1) bad++; }
        catch (const std::exception &) { caught_nt++; }
      }
    }
    relpoline_epoch();
    if (r == 0) {
      s1 = stats();
      CHECK(promoted(tail), "tail site %p not on a stub of its own after the first epoch", (const void *)tail.addr);
      CHECK(promoted(nt), "call site %p not on a stub of its own after the first epoch", (const void *)nt.addr);
    }
  }
  relpoline_stats s2 = stats();
  CHECK(s2.misses == s1.misses, "%lu misses after promotion (both targets are in the stubs)",
        (unsigned long)(s2.misses - s1.misses));

  // Once more, by hand, through the promoted call site.
  CHECK(promoted(nt), "call site not promoted before the explicit throw");
  const unsigned char *stub = ts_dest(nt.addr, nullptr);
  d1_ret = nullptr;
  long g0 = guards;
  CHECK(call_nt(v[0].get(), 5) == 19, "call_nt(D1, 5)");
  CHECK(d1_ret == nt.addr + 5, "D1::f saw return address %p, want the call site's %p",
        (const void *)d1_ret, (const void *)(nt.addr + 5));
  bool thrown = false;
  try { call_nt(v[1].get(), 777777); } catch (const std::runtime_error &) { thrown = true; }
  CHECK(thrown, "the exception did not come out of call_nt");
  CHECK(guards == g0 + 2, "call_nt's destructor ran %ld times for 2 calls (one unwound)", guards - g0);
  CHECK(ts_dest(nt.addr, nullptr) == stub, "the call site moved during the throw");
  relpoline_epoch();
  relpoline_stats s3 = stats();
  CHECK(s3.misses == s2.misses, "the explicit calls missed (%lu)", (unsigned long)(s3.misses - s2.misses));

  CHECK(guards == calls_nt + 2, "destructor ran %ld times for %ld calls", guards, calls_nt + 2);
  CHECK(bad == 0, "%ld wrong results", bad);
  CHECK(caught == 4 && caught_nt == 4, "caught %ld (tail site) and %ld (call site), want 4 and 4", caught, caught_nt);
  CHECK(s3.sites_promoted >= 2, "sites_promoted %lu", (unsigned long)s3.sites_promoted);
  std::printf("promoted %lu bad %ld caught %ld+%ld calls_nt %ld misses-after-promotion %lu\n",
              (unsigned long)s3.sites_promoted, bad, caught, caught_nt, calls_nt,
              (unsigned long)(s3.misses - s1.misses));
  if (fails) { std::fprintf(stderr, "t_cxx: %d check(s) failed\n", fails); return 1; }
  std::printf("t_cxx: ok\n");
  return 0;
}
