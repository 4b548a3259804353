// The node's int8 backbone against LiteRT's reference interpreter (testvectors/backbone/): the
// firmware blobs exported from tiny.tflite (a chain) and branchy.tflite (a graph: ADD branch,
// depthwise, PAD, average pool), run on all 64 stored inputs each, must give the stored outputs
// byte for byte. Plus the fixed-point primitives and rejection of bad blobs (format version 2).
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

uint32_t le32(const uint8_t* p) {
  return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

void put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

// Offset of layer `i`'s record (op byte) in a blob.
size_t record_at(const uint8_t* b, int i) {
  size_t at = kBackboneHeaderSize;
  for (int k = 0; k < i; ++k) at += kBackboneRecordSize + le32(b + at + 16);
  return at;
}

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
  // The host's plan: conv1 -> [0, 992), pool -> [992, 1488), conv2 -> [0, 928), mean -> [928, ..)
  CHECK_EQ(g_model.layers[0].in_ref[0], kBackboneRefInput);
  CHECK_EQ(g_model.layers[1].in_ref[0], 0u);
  CHECK_EQ(g_model.layers[1].out_ref, 992u);
  CHECK_EQ(g_model.layers[4].out_ref, kBackboneRefEmbedding);
}

TINYFL_TEST(backbone_graph_equals_reference_interpreter) {
  static unsigned char blob[16384];
  const long len = tinyfl_test::read_file(tinyfl_test::vector_path("backbone/branchy.tfmb"), blob,
                                          sizeof blob);
  CHECK(len > 0);
  Vectors io;
  CHECK(io.load("backbone/branchy_io.bin"));
  static Backbone m;
  CHECK(backbone_parse(blob, static_cast<size_t>(len), &m) == Status::Ok);
  int adds = 0, depthwise = 0, pads = 0, avg = 0;
  for (int i = 0; i < m.layer_count; ++i) {
    adds += m.layers[i].op == BackboneOp::Add;
    depthwise += m.layers[i].op == BackboneOp::DepthwiseConv2D;
    pads += m.layers[i].op == BackboneOp::Pad;
    avg += m.layers[i].op == BackboneOp::AvgPool2D;
  }
  CHECK(adds == 1 && depthwise == 1 && pads == 1 && avg == 1);
  const Array x = io.get("x");
  const Array y = io.get("y");
  const uint32_t in_len = m.input_len(), out_len = m.embedding_len;
  CHECK_EQ(in_len, 32u * 3u);
  CHECK_EQ(y.dims[1], out_len);
  CHECK(m.arena_bytes <= sizeof g_arena);
  int mismatched = 0;
  for (uint32_t i = 0; i < x.dims[0]; ++i) {
    int8_t emb[16];
    CHECK(backbone_run(m, reinterpret_cast<const int8_t*>(x.data) + i * in_len, in_len, emb,
                       out_len, g_arena, m.arena_bytes) == Status::Ok);
    if (memcmp(emb, y.data + i * out_len, out_len) != 0) ++mismatched;
  }
  CHECK_EQ(mismatched, 0);
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
  b[4] = 1;  // a version 1 blob (a chain without an arena plan) must be re-exported
  fix_crc(b, n);
  CHECK(backbone_parse(b, n, &m) == Status::BadVersion);
  memcpy(b, g_blob, n);
  b[100] ^= 1;
  CHECK(backbone_parse(b, n, &m) == Status::BadCrc);
  static uint8_t longer[16384 + 4];
  memcpy(longer, g_blob, n);
  CHECK(backbone_parse(longer, n + 4, &m) == Status::BadLength);
  // Well-formed CRC, bad contents: unknown op, out-of-range shift, layers that do not chain.
  const size_t l0 = record_at(g_blob, 0);
  memcpy(b, g_blob, n);
  b[l0] = 99;
  fix_crc(b, n);
  CHECK(backbone_parse(b, n, &m) == Status::Unsupported);
  memcpy(b, g_blob, n);
  const size_t conv_shifts = l0 + kBackboneRecordSize + 32 + 8 * 4 + 8 * 4;
  b[conv_shifts] = 40;
  fix_crc(b, n);
  CHECK(backbone_parse(b, n, &m) == Status::BadValue);
  memcpy(b, g_blob, n);
  b[l0 + kBackboneRecordSize] = 127;  // conv1 in_h: its input no longer matches the window
  fix_crc(b, n);
  CHECK(backbone_parse(b, n, &m) == Status::BadValue);
  memcpy(b, g_blob, n);
  b[6] = 33;  // layer count above kBackboneMaxLayers
  fix_crc(b, n);
  CHECK(backbone_parse(b, n, &m) == Status::TooLarge);
  CHECK_EQ(m.layer_count, 0);  // a failed parse leaves no half-filled model
}

TINYFL_TEST(backbone_rejects_bad_operands) {
  CHECK(load());
  static uint8_t b[16384];
  const size_t n = static_cast<size_t>(g_blob_len);
  const size_t l0 = record_at(g_blob, 0), l1 = record_at(g_blob, 1), l4 = record_at(g_blob, 4);
  Backbone m;
  struct Edit {
    size_t at;
    uint32_t value;
  };
  const Edit edits[] = {
      {l0 + 12, 1488 - 100},          // conv1's output runs past the arena
      {l1 + 4, 4},                    // pool reads from inside conv1's output, not all of it
      {l1 + 4, 992},                  // pool reads past the arena
      {l1 + 12, 0},                   // pool writes over its own input
      {l1 + 12, kBackboneRefEmbedding},  // only the last layer writes the embedding
      {l0 + 12, kBackboneRefInput},   // nothing writes the caller's input
      {l4 + 12, 0},                   // the last layer must write the embedding
      {l1 + 4, kBackboneRefEmbedding},   // the embedding is never read
      {l0 + 8, 5},                    // a one-input op with a second operand
      {32, 1000},                     // the declared arena is smaller than the plan
  };
  for (const Edit& e : edits) {
    memcpy(b, g_blob, n);
    put32(b + e.at, e.value);
    fix_crc(b, n);
    CHECK(backbone_parse(b, n, &m) == Status::BadValue);
  }
  memcpy(b, g_blob, n);
  b[36] = 1;  // the reserved header word
  fix_crc(b, n);
  CHECK(backbone_parse(b, n, &m) == Status::BadValue);
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
