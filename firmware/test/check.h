// A minimal offline test harness for the firmware core's host-native tests.
//
// Each test program defines cases with TINYFL_TEST and calls tinyfl_test::run_all() from main.
// Output, one line per case, is parsed by test_custom_runner.py for `pio test -e native`:
//   "ok <name>"  or  "FAIL <name>: <message> (<file>:<line>)"
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

inline Case* registry(int** count) {
  static Case cases[256];
  static int n = 0;
  *count = &n;
  return cases;
}

struct Register {
  Register(const char* name, CaseFn fn) {
    int* n;
    Case* cases = registry(&n);
    if (*n < 256) cases[(*n)++] = Case{name, fn};
  }
};

inline bool& current_failed() {
  static bool failed = false;
  return failed;
}

inline void fail(const char* name_unused, const char* msg, const char* file, int line) {
  (void)name_unused;
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
  int* n;
  Case* cases = registry(&n);
  int failures = 0;
  for (int i = 0; i < *n; ++i) {
    current_failed() = false;
    cases[i].fn();
    if (current_failed()) {
      ++failures;
      printf("FAIL %s\n", cases[i].name);
    } else {
      printf("ok %s\n", cases[i].name);
    }
    fflush(stdout);
  }
  printf("%d passed, %d failed\n", *n - failures, failures);
  return failures == 0 ? 0 : 1;
}

}  // namespace tinyfl_test

#define TINYFL_TEST(name)                                               \
  static void name();                                                   \
  static tinyfl_test::Register register_##name(#name, name);            \
  static void name()

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) tinyfl_test::fail(__func__, "CHECK(" #cond ")", __FILE__, __LINE__); \
  } while (0)

#define CHECK_EQ(a, b)                                                              \
  do {                                                                              \
    long long va_ = static_cast<long long>(a), vb_ = static_cast<long long>(b);     \
    if (va_ != vb_) {                                                               \
      char m_[160];                                                                 \
      snprintf(m_, sizeof m_, "CHECK_EQ(" #a ", " #b "): %lld != %lld", va_, vb_);  \
      tinyfl_test::fail(__func__, m_, __FILE__, __LINE__);                          \
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
      tinyfl_test::fail(__func__, m_, __FILE__, __LINE__);                              \
    }                                                                                   \
  } while (0)
