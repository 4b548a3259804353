// libFuzzer target for the DSP stage record parser (dsp_stage_parse, docs/DSP.md) and, for records
// it accepts, dsp_stage_run.
//
// Every input is parsed as it is and with its length field and CRC made consistent (so mutations
// reach the field and block checks instead of the CRC). A record that parses is run on a window
// and an output allocated at exactly the sizes it declares, so ASan flags any access outside them:
// the parser's checks must make every accepted record safe to run.
//
// Build and run (from the repository root; tools/fuzz.sh does the same for every target):
//   clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -Ifirmware/lib/tinyfl/include \
//     firmware/fuzz/fuzz_dsp_stage.cpp firmware/lib/tinyfl/src/*.cpp -o /tmp/fuzz_dsp_stage
//   mkdir -p /tmp/fuzz_dsp_corpus && cp testvectors/dsp/*.bin /tmp/fuzz_dsp_corpus/
//   /tmp/fuzz_dsp_stage -max_total_time=60 /tmp/fuzz_dsp_corpus
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tinyfl/crc32.h"
#include "tinyfl/dsp_stage.h"

using namespace tinyfl;

namespace {

constexpr size_t kMaxIn = 4096;
uint8_t g_fixed[kMaxIn];
DspWork g_work;

void run(const DspStage& stage, const uint8_t* data, size_t size) {
  int8_t* window = static_cast<int8_t*>(malloc(stage.input_len()));
  int8_t* out = static_cast<int8_t*>(malloc(stage.features));
  if (window != nullptr && out != nullptr) {
    for (size_t i = 0; i < stage.input_len(); ++i) window[i] = static_cast<int8_t>(data[i % size]);
    const Status s = dsp_stage_run(stage, window, stage.input_len(), g_work, out, stage.features);
    if (s != Status::Ok) abort();  // a parsed stage runs on any window of its length
    if (dsp_stage_run(stage, window, stage.input_len() + 1, g_work, out, stage.features) != Status::WrongShape)
      abort();
    if (stage.features > 0 && dsp_stage_run(stage, window, stage.input_len(), g_work, out, stage.features - 1u) !=
                                  Status::BufferFull)
      abort();
  }
  free(window);
  free(out);
}

void parse_and_run(const uint8_t* data, size_t size) {
  DspStage stage;
  if (dsp_stage_parse(data, size, &stage) == Status::Ok) run(stage, data, size);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  parse_and_run(data, size);
  if (size >= 16 && size <= kMaxIn) {
    memcpy(g_fixed, data, size);
    const uint32_t len = static_cast<uint32_t>(size);
    memcpy(g_fixed + 8, &len, 4);  // little-endian hosts, as the fuzzers run on
    const uint32_t crc = crc32(g_fixed, size - 4);
    memcpy(g_fixed + size - 4, &crc, 4);
    parse_and_run(g_fixed, size);
  }
  return 0;
}
