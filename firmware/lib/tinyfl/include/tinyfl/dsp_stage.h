// The DSP stage a model carries (docs/DSP.md, "The stage record"): parsed from the record the
// model build writes next to the firmware model blob, and run on every raw int8 window before the
// backbone. Its int8 features are the backbone's input codes; the host's tinyfl.dsp.stage computes
// the same bytes.
//
// The record is outside data (a model header someone built), so the parser checks every field and
// the CRC before anything runs, and the runner never reads past the window or writes past `out`.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "tinyfl/dsp.h"
#include "tinyfl/status.h"

#ifndef TINYFL_DSP_MAX_FFT
#define TINYFL_DSP_MAX_FFT 1024  // longest FFT (spectral window) the work buffers hold
#endif
#ifndef TINYFL_DSP_MAX_INPUT
#define TINYFL_DSP_MAX_INPUT 2048  // values of one raw window, samples x channels
#endif
#ifndef TINYFL_DSP_MAX_FEATURES
#define TINYFL_DSP_MAX_FEATURES 1024  // features one window gives (the backbone's input)
#endif
#ifndef TINYFL_DSP_MAX_MEL_TABLE
#define TINYFL_DSP_MAX_MEL_TABLE 1024  // a mel block's DCT values, coeffs x mels (40 x 13 = 520)
#endif

namespace tinyfl {

constexpr size_t kDspMaxBlocks = 8;
constexpr size_t kDspWorkFft = TINYFL_DSP_MAX_FFT;
constexpr size_t kDspMaxInput = TINYFL_DSP_MAX_INPUT;
constexpr size_t kDspMaxFeatures = TINYFL_DSP_MAX_FEATURES;
constexpr size_t kDspMaxMelTable = TINYFL_DSP_MAX_MEL_TABLE;
static_assert(kDspWorkFft >= kDspMinFft && kDspWorkFft <= kDspMaxFft && (kDspWorkFft & (kDspWorkFft - 1)) == 0,
              "TINYFL_DSP_MAX_FFT is a power of two the FFT supports");

enum class DspBlockKind : uint8_t { Spectral = 1, Stats = 2, Mel = 3 };

struct DspBlock {
  DspBlockKind kind = DspBlockKind::Stats;
  uint16_t bands = 0;  // spectral: log2 band energies per channel
  int32_t offset = 0;  // spectral, mel: Q8 value of feature -128
  uint8_t shift = 0;   // spectral, mel: Q8 steps per feature step, 2^shift
  uint16_t frame = 0, hop = 0, mels = 0, coeffs = 0;  // mel: framing and bank
  const uint8_t* tables = nullptr;  // mel: u16 edges[mels + 2], i16 dct[coeffs][mels], in the record
};

struct DspStage {
  uint16_t window = 0;    // samples per channel
  uint16_t channels = 0;  // interleaved, time-major
  uint8_t widen = 0;      // sample = (code - in_zp) * 2^widen, int16
  int8_t in_zp = 0;       // the raw codes' quantization, as data blobs carry it
  float in_scale = 0.0f;
  uint16_t features = 0;  // int8 outputs, blocks' features concatenated
  uint8_t block_count = 0;
  DspBlock blocks[kDspMaxBlocks];

  size_t input_len() const { return static_cast<size_t>(window) * channels; }
};

// Scratch of one run. Large (about 21.5 KB at the defaults): give it static storage; it may share
// memory with the backbone's arena, which is free while the stage runs.
struct DspWork {
  int16_t samples[kDspMaxInput];  // the widened window
  int16_t channel[kDspMaxInput];  // one channel, contiguous
  int32_t re[kDspWorkFft];
  int32_t im[kDspWorkFft];
  uint32_t power[kDspWorkFft / 2 + 1];
  uint16_t mel_edges[kDspWorkFft / 2 + 2];  // a mel block's tables, copied out of the record
  int16_t mel_dct[kDspMaxMelTable];
};

// Parses and checks a stage record (a mel block's tables stay in it: the record must outlive the
// stage): BadMagic, BadVersion, BadLength (declared length is not
// `len`), BadCrc, Truncated, BadValue (a field outside its range, features that do not add up,
// trailing bytes), Unsupported (an unknown block kind), TooLarge (beyond this build's capacities).
[[nodiscard]] Status dsp_stage_parse(const uint8_t* record, size_t len, DspStage* out);

// The stage's `features` int8 values of one raw window of input_len() int8 codes. WrongShape for
// another window length, BufferFull when out_len is short.
[[nodiscard]] Status dsp_stage_run(const DspStage& stage, const int8_t* window, size_t window_len, DspWork& work,
                                   int8_t* out, size_t out_len);

}  // namespace tinyfl
