// The data blob parser against the golden blobs (testvectors/blobs, written by
// tools/gen_testvectors.py): every valid blob parses to the fields the Python side wrote, and
// every invalid one is rejected with exactly the status its .reason file names.
#include "../check.h"
#include "../golden.h"
#include "tinyfl/blob.h"

using namespace tinyfl;
using namespace golden;

namespace {

uint8_t g_frame[kMaxFile];
uint8_t g_expect[kMaxFile];
Text g_text;

}  // namespace

// ---- data blobs -----------------------------------------------------------------------------

namespace {

void blob_text(Text& t, const BlobView& b) {
  t.add("kind=%u\nn_samples=%u\ndim=%u\nn_classes=%u\nscale=", b.kind, b.n_samples, b.dim, b.n_classes);
  t.f32(b.scale);
  t.add("\nzero_point=%d\nmodel_hash=", static_cast<int>(b.zero_point));
  t.hex(b.model_hash, sizeof b.model_hash);
  t.add("\nlabels=");
  for (uint32_t i = 0; i < b.n_samples; ++i) t.add(i ? ",%u" : "%u", b.label(i));
  t.add("\nsamples=");
  for (uint32_t i = 0; i < b.n_samples; ++i)
    for (uint16_t j = 0; j < b.dim; ++j) t.add(i || j ? ",%d" : "%d", b.sample(i)[j]);
  t.add("\n");
}

struct FakeCache {
  uint16_t dim = 0, n_classes = 0;
  float scale = 0;
  int32_t zero_point = 0;
  uint32_t added = 0;
  int8_t first = 0;
  Status configure(uint16_t d, uint16_t k, float s, int32_t zp) {
    dim = d;
    n_classes = k;
    scale = s;
    zero_point = zp;
    return Status::Ok;
  }
  Status add(const int8_t* v, uint8_t) {
    if (added++ == 0) first = v[0];
    return Status::Ok;
  }
};

}  // namespace

TINYFL_TEST(golden_blobs_parse) {
  FileList files;
  list_files("blobs", ".bin", &files);
  CHECK(files.n >= 3);
  for (int i = 0; i < files.n; ++i) {
    char stem[96];
    stem_of(files.names[i], stem, sizeof stem);
    const long n = load("blobs", stem, ".bin", g_frame, sizeof g_frame - 16);
    BlobView b{};
    const Status s = parse_blob(g_frame, static_cast<size_t>(n), &b);
    if (s != Status::Ok) printf("%s: %s\n", files.names[i], status_name(s));
    CHECK(s == Status::Ok);
    if (s != Status::Ok) continue;
    CHECK_EQ(b.size_bytes, n);
    g_text.len = 0;
    blob_text(g_text, b);
    const long fn = load("blobs", stem, ".fields.txt", g_expect, sizeof g_expect);
    check_text(files.names[i], g_text, g_expect, fn);
    // a memory region bigger than the blob: the rest is ignored
    memset(g_frame + n, 0xA5, 16);
    CHECK(parse_blob(g_frame, static_cast<size_t>(n) + 16, &b) == Status::Ok);
    for (long cut = 0; cut < n; ++cut) CHECK(parse_blob(g_frame, static_cast<size_t>(cut), &b) == Status::Truncated);
    uint8_t hash[8];
    b.copy_model_hash(hash);
    CHECK(memcmp(hash, b.model_hash, 8) == 0);
    FakeCache cache;
    const Status ls = load_samples(b, cache);
    if (b.kind == static_cast<uint8_t>(BlobKind::Features)) {
      CHECK(ls == Status::Ok);
      CHECK_EQ(cache.added, b.n_samples);
      CHECK_EQ(cache.dim, b.dim);
      if (b.n_samples > 0) CHECK_EQ(cache.first, b.sample(0)[0]);
    } else {
      CHECK(ls == Status::Unsupported);
    }
  }
}

TINYFL_TEST(invalid_blobs_rejected_with_their_reason) {
  const int n = check_rejections("blobs/invalid", g_frame, sizeof g_frame, [](const char*, size_t len) {
    BlobView b{};
    return parse_blob(g_frame, len, &b);
  });
  CHECK(n >= 10);
}

int main() { return tinyfl_test::run_all(); }
