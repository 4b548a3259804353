// libFuzzer target for the firmware model blob parser (backbone_parse, format version 2,
// docs/MODEL.md) and, for blobs it accepts, backbone_run.
//
// Every input is parsed as it is and with its length field and CRC made consistent (so mutations
// reach the header, record and payload checks instead of the CRC). A blob that parses is run on
// an input, embedding and arena allocated at exactly the sizes the model declares, so ASan flags
// any kernel access outside them: the parser's operand, size and geometry checks must make every
// accepted blob safe to run. Runs are skipped above a fixed work bound (a valid blob may describe
// a very large model) so the fuzzer stays fast.
//
// Build and run (from the repository root; tools/fuzz.sh does the same for every target):
//   clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -Ifirmware/lib/tinyfl/include \
//     firmware/fuzz/fuzz_backbone.cpp firmware/lib/tinyfl/src/*.cpp -o /tmp/fuzz_backbone
//   mkdir -p /tmp/fuzz_backbone_corpus && cp testvectors/backbone/*.tfmb /tmp/fuzz_backbone_corpus/
//   /tmp/fuzz_backbone -max_total_time=60 /tmp/fuzz_backbone_corpus
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tinyfl/backbone.h"
#include "tinyfl/crc32.h"

using namespace tinyfl;

namespace {

constexpr size_t kMaxIn = 1u << 18;
constexpr uint64_t kMaxWork = 1u << 22;  // multiply-accumulates (or copies) per run

Backbone g_model;
uint8_t g_fixed[kMaxIn];

// Kernel work of one run, bounded before running (64-bit: dimensions are up to 65535 each).
uint64_t work_of(const Backbone& m) {
  uint64_t total = 0;
  for (uint8_t i = 0; i < m.layer_count; ++i) {
    const BackboneLayer& l = m.layers[i];
    const uint64_t taps = static_cast<uint64_t>(l.k_h) * l.k_w * (l.in_c + 1u);
    total += static_cast<uint64_t>(l.out_size) * taps + l.in_size + l.out_size;
  }
  return total;
}

// A node's arena is static and small (TINYFL_BACKBONE_ARENA, 16 KiB by default; a blob whose
// plan needs more is refused before it runs: prepare_compiled_model's TooLarge). Running a
// parsed model with a bigger arena here would only test malloc.
constexpr uint64_t kMaxArena = 1u << 20;

void run(const Backbone& m, const uint8_t* data, size_t size) {
  if (work_of(m) > kMaxWork || m.arena_bytes > kMaxArena || m.input_len() > kMaxArena ||
      m.embedding_len > kMaxArena)
    return;
  int8_t* input = static_cast<int8_t*>(malloc(m.input_len()));
  int8_t* embedding = static_cast<int8_t*>(malloc(m.embedding_len));
  uint8_t* arena = static_cast<uint8_t*>(malloc(m.arena_bytes > 0 ? m.arena_bytes : 1));
  if (input != nullptr && embedding != nullptr && arena != nullptr) {
    for (uint32_t i = 0; i < m.input_len(); ++i) input[i] = static_cast<int8_t>(data[i % size]);
    size_t used = 0;
    const Status s = backbone_run(m, input, m.input_len(), embedding, m.embedding_len, arena,
                                  m.arena_bytes, &used);
    if (s != Status::Ok || used != m.arena_bytes) abort();
    // Reading the whole embedding: ASan flags it if the buffer was not what the model declared.
    volatile int sum = 0;
    for (uint32_t i = 0; i < m.embedding_len; ++i) sum = sum + embedding[i];
  }
  free(input);
  free(embedding);
  free(arena);
}

void parse_and_run(const uint8_t* data, size_t size) {
  if (backbone_parse(data, size, &g_model) == Status::Ok) {
    run(g_model, data, size);
  } else if (g_model.layer_count != 0) {
    abort();  // a refused blob must leave no half-filled model
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  parse_and_run(data, size);
  if (size < kBackboneHeaderSize + 4 || size > kMaxIn) return 0;
  // The same bytes with a consistent total length and CRC.
  memcpy(g_fixed, data, size);
  memcpy(g_fixed, "TFMB", 4);
  g_fixed[4] = static_cast<uint8_t>(kBackboneBlobVersion);
  g_fixed[5] = 0;
  for (int i = 0; i < 4; ++i) g_fixed[8 + i] = static_cast<uint8_t>(size >> (8 * i));
  const uint32_t c = crc32(g_fixed, size - 4);
  for (int i = 0; i < 4; ++i) g_fixed[size - 4 + i] = static_cast<uint8_t>(c >> (8 * i));
  parse_and_run(g_fixed, size);
  return 0;
}
