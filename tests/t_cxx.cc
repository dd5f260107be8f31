// C++ through relpoline-c++: virtual calls over two classes get promoted,
// every result is checked, and exceptions thrown by a target unwind through
// the promoted site (the stub never touches the stack).
#include <cstdio>
#include <stdexcept>
#include <memory>
#include <vector>
#include <relpoline.h>
struct B { virtual ~B(){} virtual long f(long x) = 0; };
struct D1 : B { long f(long x) override { return x + 1; } };
struct D2 : B { long f(long x) override { if (x == 777777) throw std::runtime_error("x"); return x + 2; } };
__attribute__((noinline)) long call(B *b, long x) { return b->f(x); }
int main() {
  std::vector<std::unique_ptr<B>> v; v.emplace_back(new D1); v.emplace_back(new D2);
  long bad = 0, caught = 0;
  for (int r = 0; r < 4; r++) {
    for (long i = 0; i < 1000000; i++) {
      try { if (call(v[i & 1].get(), i) != i + 1 + (i & 1)) bad++; } catch (const std::exception &) { caught++; }
    }
    relpoline_epoch();
  }
  relpoline_stats s{}; s.size = sizeof s; relpoline_stats_get(&s);
  std::printf("promoted %lu bad %ld caught %ld\n", (unsigned long)s.sites_promoted, bad, caught);
  return bad != 0 || caught != 4 || s.sites_promoted < 1;
}
