// From a raw-window data blob to the sample cache through the backbone (tinyfl/samples.h), and the
// compiled-model registry (tinyfl/models.h): the cache must hold exactly the reference
// interpreter's embeddings of testvectors/backbone/, with the documented errors for a blob the
// model cannot take.
#include <stdint.h>
#include <string.h>

#include "../check.h"
#include "../vectors.h"
#include "tinyfl/cache.h"
#include "tinyfl/crc32.h"
#include "tinyfl/logline.h"
#include "tinyfl/models.h"
#include "tinyfl/samples.h"

using namespace tinyfl;

namespace {

constexpr uint32_t kWindows = 12;
unsigned char g_blob[16384];
Vectors g_io;
Backbone g_model;
uint8_t g_arena[4096];
uint8_t g_labels[kWindows];

// The tiny reference model (input 128 x 6, embedding 32) and a view of its first kWindows inputs
// as a raw-window blob with the model's own input quantization.
bool setup(BlobView* view) {
  static long len = -1;
  if (len < 0) {
    len = tinyfl_test::read_file(tinyfl_test::vector_path("backbone/tiny.tfmb"), g_blob, sizeof g_blob);
    if (len <= 0 || !g_io.load("backbone/tiny_io.bin")) return false;
  }
  if (backbone_parse(g_blob, static_cast<size_t>(len), &g_model) != Status::Ok) return false;
  for (uint32_t i = 0; i < kWindows; ++i) g_labels[i] = static_cast<uint8_t>(i % 3);
  *view = BlobView{};
  view->kind = static_cast<uint8_t>(BlobKind::RawWindows);
  view->n_samples = kWindows;
  view->dim = static_cast<uint16_t>(g_model.input_len());
  view->n_classes = 3;
  view->scale = g_model.in_scale;
  view->zero_point = g_model.in_zp;
  view->labels = g_labels;
  view->samples = reinterpret_cast<const int8_t*>(g_io.get("x").data);
  return true;
}

}  // namespace

TINYFL_TEST(windows_fill_the_cache_with_the_reference_embeddings) {
  BlobView blob;
  CHECK(setup(&blob));
  static CacheStorage<8, 64> storage;  // smaller than the blob: keeps the newest 8
  EmbeddingCache cache(storage);
  LoadSummary sum;
  CHECK(load_windows(blob, g_model, g_arena, sizeof g_arena, cache, &sum) == Status::Ok);
  const Array y = g_io.get("y");
  CHECK_EQ(sum.samples, kWindows);
  CHECK_EQ(sum.embedding_crc, crc32(y.data, kWindows * 32u));
  CHECK_EQ(cache.size(), 8u);
  CHECK_EQ(cache.dim(), 32);
  CHECK_EQ(cache.n_classes(), 3);
  for (uint32_t i = 0; i < 8; ++i) {
    const uint32_t window = kWindows - 8 + i;
    float x[64];
    cache.embedding(i, x);
    CHECK_EQ(cache.label(i), g_labels[window]);
    for (uint32_t j = 0; j < 32; ++j) {
      const int8_t q = static_cast<int8_t>(y.data[window * 32u + j]);
      const float expected = (static_cast<float>(q) - static_cast<float>(g_model.out_zp)) * g_model.out_scale;
      CHECK(x[j] == expected);
    }
  }
}

TINYFL_TEST(windows_the_model_cannot_take_are_refused) {
  BlobView blob;
  CHECK(setup(&blob));
  static CacheStorage<8, 64> storage;
  EmbeddingCache cache(storage);
  BlobView b = blob;
  b.kind = static_cast<uint8_t>(BlobKind::Features);
  CHECK(load_windows(b, g_model, g_arena, sizeof g_arena, cache, nullptr) == Status::WrongShape);
  b = blob;
  b.dim = static_cast<uint16_t>(blob.dim - 6);
  CHECK(load_windows(b, g_model, g_arena, sizeof g_arena, cache, nullptr) == Status::WrongShape);
  b = blob;
  b.scale = blob.scale * 2.0f;  // codes on another scale are not the model's input tensor
  CHECK(load_windows(b, g_model, g_arena, sizeof g_arena, cache, nullptr) == Status::WrongModel);
  b = blob;
  b.zero_point = blob.zero_point + 1;
  CHECK(load_windows(b, g_model, g_arena, sizeof g_arena, cache, nullptr) == Status::WrongModel);
  CHECK(load_windows(blob, g_model, g_arena, g_model.arena_bytes - 1, cache, nullptr) == Status::BufferFull);
}

TINYFL_TEST(embed_windows_stops_at_the_first_sink_error) {
  BlobView blob;
  CHECK(setup(&blob));
  uint32_t calls = 0;
  const Status s = embed_windows(blob, g_model, g_arena, sizeof g_arena,
                                 [&](uint32_t i, const int8_t*, size_t len, uint8_t) {
                                   ++calls;
                                   return i == 4 || len != 32 ? Status::PipeError : Status::Ok;
                                 });
  CHECK(s == Status::PipeError);
  CHECK_EQ(calls, 5u);
}

TINYFL_TEST(compiled_models_are_found_by_hash_and_fit_the_arena) {
  CHECK(compiled_model_count() >= 1);
  static BackboneWork work;
  for (size_t i = 0; i < compiled_model_count(); ++i) {
    const CompiledModel& m = compiled_model(i);
    CHECK(find_compiled_model(m.hash) == &m);
    CHECK(prepare_compiled_model(m, work) == Status::Ok);
    CHECK(work.model.embedding_len <= kMaxDim);
  }
  const uint8_t har[8] = {0x6f, 0xd4, 0x40, 0x58, 0xec, 0x53, 0x4a, 0x5d};
  const CompiledModel* m = find_compiled_model(har);
  CHECK(m != nullptr);
  CHECK(strcmp(m->task, "har") == 0);
  const uint8_t unknown[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  CHECK(find_compiled_model(unknown) == nullptr);
}

TINYFL_TEST(a_blob_naming_a_model_the_firmware_lacks_is_refused_by_name) {
  BlobView blob;
  CHECK(setup(&blob));
  static CacheStorage<8, 64> storage;
  EmbeddingCache cache(storage);
  static BackboneWork work;
  for (int i = 0; i < 8; ++i) blob.model_hash[i] = static_cast<uint8_t>(0xa0 + i);
  BlobLoad load;
  CHECK(load_blob_samples(blob, cache, work, &load) == Status::WrongModel);
  CHECK(load.model == nullptr);
  LogLine line;
  describe_missing_model(blob, line);
  CHECK(strstr(line.c_str(), "blob needs model a0a1a2a3a4a5a6a7") != nullptr);
  CHECK(strstr(line.c_str(), "har 6fd44058ec534a5d") != nullptr);
}

TINYFL_TEST(log_line_hex) {
  LogLine line;
  const uint8_t b[3] = {0x00, 0xab, 0x7f};
  line.hex(b, 3).str(" ").hex32(0xb2cea45au);
  CHECK(strcmp(line.c_str(), "00ab7f b2cea45a") == 0);
}

int main() { return tinyfl_test::run_all(); }
