// The node's int8 backbone against LiteRT's reference interpreter (testvectors/backbone/): the
// firmware blob exported from tiny.tflite, run on all 64 stored inputs, must give the stored
// outputs byte for byte. Plus the fixed-point primitives and rejection of bad blobs.
#include <stdint.h>
#include <string.h>

#include "../check.h"
#include "../vectors.h"
#include "tinyfl/backbone.h"
#include "tinyfl/crc32.h"

using namespace tinyfl;

namespace {

unsigned char g_blob[16384];
long g_blob_len = -1;
Vectors g_io;
Backbone g_model;
uint8_t g_arena[4096];

bool load() {
  if (g_blob_len < 0) {
    g_blob_len = tinyfl_test::read_file(tinyfl_test::vector_path("backbone/tiny.tfmb"), g_blob,
                                        sizeof g_blob);
    if (!g_io.load("backbone/tiny_io.bin")) return false;
  }
  return g_blob_len > 0;
}

// Rewrites the CRC after a deliberate edit, so the parser's field checks (not the CRC) fire.
void fix_crc(uint8_t* b, size_t len) {
  const uint32_t c = crc32(b, len - 4);
  for (int i = 0; i < 4; ++i) b[len - 4 + i] = static_cast<uint8_t>(c >> (8 * i));
}

}  // namespace

TINYFL_TEST(backbone_parses_the_exported_blob) {
  CHECK(load());
  CHECK(backbone_parse(g_blob, static_cast<size_t>(g_blob_len), &g_model) == Status::Ok);
  CHECK_EQ(g_model.layer_count, 5);
  CHECK_EQ(g_model.input_len(), 128 * 6);
  CHECK_EQ(g_model.embedding_len, 32);
  CHECK(g_model.layers[0].op == BackboneOp::Conv2D);
  CHECK(g_model.layers[1].op == BackboneOp::MaxPool2D);
  CHECK(g_model.layers[2].op == BackboneOp::Conv2D);
  CHECK(g_model.layers[3].op == BackboneOp::Mean);
  CHECK(g_model.layers[4].op == BackboneOp::FullyConnected);
  // conv1 out (124 x 8) + pool out (62 x 8) is the largest pair held at once.
  CHECK_EQ(g_model.arena_bytes, 124 * 8 + 62 * 8);
}

TINYFL_TEST(backbone_equals_reference_interpreter_on_all_inputs) {
  CHECK(load());
  CHECK(backbone_parse(g_blob, static_cast<size_t>(g_blob_len), &g_model) == Status::Ok);
  const Array x = g_io.get("x");
  const Array y = g_io.get("y");
  CHECK_EQ(x.dims[0], 64);
  CHECK_EQ(y.dims[1], 32);
  int mismatched_inputs = 0;
  for (uint32_t i = 0; i < x.dims[0]; ++i) {
    int8_t emb[32];
    size_t used = 0;
    const int8_t* in = reinterpret_cast<const int8_t*>(x.data) + i * 128u * 6u;
    CHECK(backbone_run(g_model, in, 128 * 6, emb, sizeof emb, g_arena, sizeof g_arena, &used) ==
          Status::Ok);
    CHECK_EQ(used, g_model.arena_bytes);
    if (memcmp(emb, y.data + i * 32u, 32) != 0) ++mismatched_inputs;
  }
  CHECK_EQ(mismatched_inputs, 0);
}

TINYFL_TEST(backbone_runs_in_exactly_the_arena_it_reports) {
  CHECK(load());
  CHECK(backbone_parse(g_blob, static_cast<size_t>(g_blob_len), &g_model) == Status::Ok);
  const Array x = g_io.get("x");
  const Array y = g_io.get("y");
  static uint8_t tight[124 * 8 + 62 * 8];
  int8_t emb[32];
  CHECK(backbone_run(g_model, reinterpret_cast<const int8_t*>(x.data), 768, emb, 32, tight,
                     sizeof tight) == Status::Ok);
  CHECK(memcmp(emb, y.data, 32) == 0);
  CHECK(backbone_run(g_model, reinterpret_cast<const int8_t*>(x.data), 768, emb, 32, tight,
                     sizeof tight - 1) == Status::BufferFull);
  CHECK(backbone_run(g_model, reinterpret_cast<const int8_t*>(x.data), 767, emb, 32, tight,
                     sizeof tight) == Status::WrongShape);
  CHECK(backbone_run(g_model, reinterpret_cast<const int8_t*>(x.data), 768, emb, 31, tight,
                     sizeof tight) == Status::WrongShape);
}

TINYFL_TEST(backbone_rejects_every_truncation) {
  CHECK(load());
  Backbone m;
  for (long n = 0; n < g_blob_len; ++n) {
    const Status s = backbone_parse(g_blob, static_cast<size_t>(n), &m);
    if (s != Status::Truncated) {
      CHECK(s == Status::Truncated);
      break;
    }
  }
}

TINYFL_TEST(backbone_rejects_corrupt_blobs) {
  CHECK(load());
  static uint8_t b[16384];
  const size_t n = static_cast<size_t>(g_blob_len);
  Backbone m;
  // Any single flipped byte: the CRC (or, in the header, the magic/version/length) catches it.
  for (size_t i = 0; i < n; i += 7) {
    memcpy(b, g_blob, n);
    b[i] ^= 0x5A;
    CHECK(backbone_parse(b, n, &m) != Status::Ok);
  }
  memcpy(b, g_blob, n);
  b[0] = 'X';
  CHECK(backbone_parse(b, n, &m) == Status::BadMagic);
  memcpy(b, g_blob, n);
  b[4] = 2;
  CHECK(backbone_parse(b, n, &m) == Status::BadVersion);
  memcpy(b, g_blob, n);
  b[100] ^= 1;
  CHECK(backbone_parse(b, n, &m) == Status::BadCrc);
  static uint8_t longer[16384 + 4];
  memcpy(longer, g_blob, n);
  CHECK(backbone_parse(longer, n + 4, &m) == Status::BadLength);
  // Well-formed CRC, bad contents: unknown op, out-of-range shift, layers that do not chain.
  memcpy(b, g_blob, n);
  b[kBackboneHeaderSize] = 9;
  fix_crc(b, n);
  CHECK(backbone_parse(b, n, &m) == Status::Unsupported);
  memcpy(b, g_blob, n);
  const size_t conv_shifts = kBackboneHeaderSize + 8 + 32 + 8 * 4 + 8 * 4;
  b[conv_shifts] = 40;
  fix_crc(b, n);
  CHECK(backbone_parse(b, n, &m) == Status::BadValue);
  memcpy(b, g_blob, n);
  b[kBackboneHeaderSize + 8] = 127;  // conv1 in_h: its input no longer matches the window
  fix_crc(b, n);
  CHECK(backbone_parse(b, n, &m) == Status::BadValue);
  memcpy(b, g_blob, n);
  b[6] = 17;  // layer count above kBackboneMaxLayers
  fix_crc(b, n);
  CHECK(backbone_parse(b, n, &m) == Status::TooLarge);
}

TINYFL_TEST(fixed_point_primitives) {
  const int32_t kMin = -2147483647 - 1;
  CHECK_EQ(saturating_rounding_doubling_high_mul(kMin, kMin), 2147483647);
  CHECK_EQ(saturating_rounding_doubling_high_mul(1 << 30, 1 << 30), 1 << 29);
  CHECK_EQ(saturating_rounding_doubling_high_mul(-3, 1 << 30), -1);
  CHECK_EQ(rounding_divide_by_pot(5, 1), 3);
  CHECK_EQ(rounding_divide_by_pot(-5, 1), -3);
  CHECK_EQ(rounding_divide_by_pot(3, 1), 2);
  CHECK_EQ(rounding_divide_by_pot(-3, 1), -2);
  CHECK_EQ(rounding_divide_by_pot(4, 1), 2);
  CHECK_EQ(multiply_by_quantized_multiplier(100, 1 << 30, -1), 25);
  CHECK_EQ(multiply_by_quantized_multiplier(100, 1 << 30, 1), 100);
}

int main() { return tinyfl_test::run_all(); }
