// A minimal offline test harness for the firmware core's host-native tests.
//
// Each test program defines cases with TINYFL_TEST and calls tinyfl_test::run_all() from main.
// Output, one line per case, is parsed by test_custom_runner.py for `pio test -e native`:
//   "ok <name>", or "FAIL-DETAIL <message> (<file>:<line>)" followed by "FAIL <name>"
// then a summary "<n> passed, <m> failed". Registering more than kMaxCases cases fails the
// program with a case named harness_capacity: a case that never ran must not pass silently.
#pragma once
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

namespace tinyfl_test {

using CaseFn = void (*)();
struct Case {
  const char* name;
  CaseFn fn;
};

constexpr int kMaxCases = 256;

struct Registry {
  Case cases[kMaxCases];
  int count;
  int dropped;  // cases registered past kMaxCases, reported as a failure by run_all
};

inline Registry& registry() {
  static Registry r{};
  return r;
}

struct Register {
  Register(const char* name, CaseFn fn) {
    Registry& r = registry();
    if (r.count < kMaxCases) {
      r.cases[r.count++] = Case{name, fn};
    } else {
      ++r.dropped;
    }
  }
};

inline bool& current_failed() {
  static bool failed = false;
  return failed;
}

inline void fail(const char* msg, const char* file, int line) {
  if (!current_failed()) printf("FAIL-DETAIL %s (%s:%d)\n", msg, file, line);
  current_failed() = true;
}

// Path of a file under testvectors/; TINYFL_TESTVECTORS overrides the directory.
inline const char* vector_path(const char* rel) {
  static char path[512];
  const char* dir = getenv("TINYFL_TESTVECTORS");
  snprintf(path, sizeof path, "%s/%s", dir ? dir : "testvectors", rel);
  return path;
}

// Reads a whole file into `buf`; returns its length or -1.
inline long read_file(const char* path, unsigned char* buf, long cap) {
  FILE* f = fopen(path, "rb");
  if (!f) return -1;
  long n = static_cast<long>(fread(buf, 1, static_cast<size_t>(cap), f));
  bool truncated = !feof(f) && fgetc(f) != EOF;
  fclose(f);
  return truncated ? -1 : n;
}

inline int run_all() {
  Registry& r = registry();
  int failures = 0;
  for (int i = 0; i < r.count; ++i) {
    current_failed() = false;
    r.cases[i].fn();
    if (current_failed()) {
      ++failures;
      printf("FAIL %s\n", r.cases[i].name);
    } else {
      printf("ok %s\n", r.cases[i].name);
    }
    fflush(stdout);
  }
  const int passed = r.count - failures;
  if (r.dropped > 0) {
    ++failures;
    printf("FAIL-DETAIL %d cases past the harness's %d were not run: raise kMaxCases (%s)\n",
           r.dropped, kMaxCases, __FILE__);
    printf("FAIL harness_capacity\n");
  }
  printf("%d passed, %d failed\n", passed, failures);
  return failures == 0 ? 0 : 1;
}

}  // namespace tinyfl_test

#define TINYFL_TEST(name)                                               \
  static void name();                                                   \
  static tinyfl_test::Register register_##name(#name, name);            \
  static void name()

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) tinyfl_test::fail("CHECK(" #cond ")", __FILE__, __LINE__); \
  } while (0)

#define CHECK_EQ(a, b)                                                              \
  do {                                                                              \
    long long va_ = static_cast<long long>(a), vb_ = static_cast<long long>(b);     \
    if (va_ != vb_) {                                                               \
      char m_[160];                                                                 \
      snprintf(m_, sizeof m_, "CHECK_EQ(" #a ", " #b "): %lld != %lld", va_, vb_);  \
      tinyfl_test::fail(m_, __FILE__, __LINE__);                          \
    }                                                                               \
  } while (0)

// |a - b| <= tol * max(1, |b|): relative for large values, absolute near zero.
#define CHECK_NEAR(a, b, tol)                                                           \
  do {                                                                                  \
    double va_ = (a), vb_ = (b);                                                        \
    double lim_ = (tol) * (fabs(vb_) > 1.0 ? fabs(vb_) : 1.0);                          \
    if (!(fabs(va_ - vb_) <= lim_)) {                                                   \
      char m_[200];                                                                     \
      snprintf(m_, sizeof m_, "CHECK_NEAR(" #a ", " #b "): %.9g vs %.9g", va_, vb_);    \
      tinyfl_test::fail(m_, __FILE__, __LINE__);                              \
    }                                                                                   \
  } while (0)
