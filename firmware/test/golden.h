// Helpers of the golden-vector tests (test_wire, test_blob, test_label): listing and loading testvectors/
// files, and the canonical text both codecs print decoded fields in.
#pragma once
#include <dirent.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "tinyfl/status.h"
#include "tinyfl/wire.h"

namespace golden {

constexpr size_t kMaxFile = 1 << 16;

// ---- files ----------------------------------------------------------------------------------

struct FileList {
  char names[128][96];
  int n = 0;
};

// Names in testvectors/<dir> ending with `suffix`, sorted.
inline void list_files(const char* dir, const char* suffix, FileList* out) {
  out->n = 0;
  DIR* d = opendir(tinyfl_test::vector_path(dir));
  if (d == nullptr) return;
  const size_t sl = strlen(suffix);
  while (dirent* e = readdir(d)) {
    const size_t l = strlen(e->d_name);
    if (l <= sl || l >= sizeof out->names[0] || strcmp(e->d_name + l - sl, suffix) != 0) continue;
    if (out->n < 128) memcpy(out->names[out->n++], e->d_name, l + 1);
  }
  closedir(d);
  qsort(out->names, static_cast<size_t>(out->n), sizeof out->names[0],
        [](const void* a, const void* b) { return strcmp(static_cast<const char*>(a), static_cast<const char*>(b)); });
}

// Reads testvectors/<dir>/<stem><ext>; returns its length or -1.
inline long load(const char* dir, const char* stem, const char* ext, uint8_t* buf, long cap) {
  char rel[256];
  snprintf(rel, sizeof rel, "%s/%.*s%s", dir, static_cast<int>(strlen(stem)), stem, ext);
  return tinyfl_test::read_file(tinyfl_test::vector_path(rel), buf, cap);
}

// "x.bin" -> "x"
inline void stem_of(const char* name, char* out, size_t cap) {
  snprintf(out, cap, "%s", name);
  char* dot = strrchr(out, '.');
  if (dot != nullptr) *dot = 0;
}

// A frame's authentication from testvectors/<dir>/<stem>.auth.txt ("topic=...\nkey=<hex>\n"), or
// false when the file does not exist (a CRC frame).
struct AuthFile {
  char topic[256];
  uint8_t key[tinyfl::kFrameKeyLen];
  tinyfl::FrameAuth auth;
};

inline bool load_auth(const char* dir, const char* stem, AuthFile* out) {
  char text[512] = {};
  const long n = load(dir, stem, ".auth.txt", reinterpret_cast<uint8_t*>(text), sizeof text - 1);
  if (n <= 0) return false;
  const char* topic = strstr(text, "topic=");
  const char* key = strstr(text, "key=");
  if (topic == nullptr || key == nullptr) return false;
  topic += 6;
  const size_t tl = strcspn(topic, "\n");
  if (tl == 0 || tl >= sizeof out->topic) return false;
  memcpy(out->topic, topic, tl);
  out->topic[tl] = 0;
  key += 4;
  for (size_t i = 0; i < tinyfl::kFrameKeyLen; ++i) {
    unsigned byte = 0;
    if (sscanf(key + 2 * i, "%2x", &byte) != 1) return false;
    out->key[i] = static_cast<uint8_t>(byte);
  }
  out->auth = tinyfl::FrameAuth{out->key, out->topic, tl};
  return true;
}

// For every NAME.bin in testvectors/<dir>, sorted: loads it into buf[0, cap) and calls
// fn(name, stem, len, auth), auth being that of its NAME.auth.txt (null for a CRC frame; valid
// until the next file). Returns the files found.
template <typename Fn>
int for_each_golden(const char* dir, uint8_t* buf, long cap, Fn fn) {
  FileList files;
  list_files(dir, ".bin", &files);
  for (int i = 0; i < files.n; ++i) {
    char stem[96];
    stem_of(files.names[i], stem, sizeof stem);
    const long n = load(dir, stem, ".bin", buf, cap);
    CHECK(n >= 0);  // (an invalid vector may be empty)
    if (n < 0) continue;
    static AuthFile af;
    fn(static_cast<const char*>(files.names[i]), static_cast<const char*>(stem), static_cast<size_t>(n),
       load_auth(dir, stem, &af) ? static_cast<const tinyfl::FrameAuth*>(&af.auth) : nullptr);
  }
  return files.n;
}

// ---- canonical text (the same lines as tinyfl.wire.fields_text) -----------------------------

struct Text {
  char buf[1 << 17];
  size_t len = 0;
  void add(const char* fmt, ...) __attribute__((format(printf, 2, 3))) {
    va_list ap;
    va_start(ap, fmt);
    const int n = vsnprintf(buf + len, sizeof buf - len, fmt, ap);
    va_end(ap);
    if (n > 0) len += static_cast<size_t>(n) < sizeof buf - len ? static_cast<size_t>(n) : sizeof buf - len - 1;
  }
  void f32(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    add("0x%08x", bits);
  }
  void hex(const uint8_t* p, size_t n) {
    for (size_t i = 0; i < n; ++i) add("%02x", p[i]);
  }
};

inline void check_text(const char* what, const Text& t, const uint8_t* expect, long n) {
  const bool same = n >= 0 && static_cast<size_t>(n) == t.len && memcmp(expect, t.buf, t.len) == 0;
  if (!same) {
    printf("fields of %s differ; C++ printed:\n%.*s", what, static_cast<int>(t.len), t.buf);
    CHECK(same);
  }
}

// For every NAME.bin in testvectors/<dir>: loads it into buf and checks that
// `status_of(stem, bytes, len)` is the status its NAME.reason names. Returns the files checked.
template <typename StatusOf>
int check_rejections(const char* dir, uint8_t* buf, long cap, StatusOf status_of) {
  return for_each_golden(dir, buf, cap, [&](const char* name, const char* stem, size_t n, const tinyfl::FrameAuth*) {
    char reason[64] = {};
    const long rn = load(dir, stem, ".reason", reinterpret_cast<uint8_t*>(reason), sizeof reason - 1);
    CHECK(rn > 0);
    if (rn <= 0) return;
    reason[strcspn(reason, "\r\n")] = 0;
    const char* got = tinyfl::status_name(status_of(stem, n));
    if (strcmp(got, reason) != 0) {
      printf("%s: got %s, expected %s\n", name, got, reason);
      CHECK(strcmp(got, reason) == 0);
    }
  });
}

}  // namespace golden
