// The mel block (tinyfl/dsp.h, docs/DSP.md): framed log mel energies or MFCC, bit for bit as the
// host's tinyfl.dsp.mel_frames. Its own object file, so its flash shows on its own in a map.
//
// Overflow, per frame: a power bin is at most 2^31 (|re|, |im| <= 2^15 after the halving FFT) and
// a weight at most 2^15, so a product is at most 2^46 and a filter's sum over at most
// n/2 + 1 <= 513 bins below 2^56: uint64. The energy (sum >> 15) is below 2^41, inside
// dsp_log2_q8's 2^55, and its log at most 41 * 256 < 2^14. A DCT product is then below 2^29 in magnitude and a sum over at
// most 512 filters below 2^38: int64; the rounded coefficient (>> 15) fits int32.
#include "tinyfl/dsp.h"

namespace tinyfl {

namespace {

constexpr uint32_t kOneQ15 = uint32_t{1} << 15;  // the weight of a filter's centre bin

bool valid_bank(const DspMelBank& bank, size_t n) {
  if (bank.edges == nullptr || bank.mels < 1 || bank.mels > n / 2 || bank.coeffs > bank.mels) return false;
  if (bank.coeffs > 0 && bank.dct == nullptr) return false;
  for (size_t j = 0; j + 1 < size_t{bank.mels} + 2u; ++j)
    if (bank.edges[j] > bank.edges[j + 1]) return false;
  return bank.edges[bank.mels + 1] <= n / 2;
}

// Q8 log2 of each filter's energy into logs[0..mels-1]: the triangular weights are derived from
// the edges here, every frame (two divisions per bin: no table to store, no state kept).
void log_mel(const uint32_t* power, const DspMelBank& bank, int32_t* logs) {
  for (size_t j = 0; j < bank.mels; ++j) {
    const uint32_t lo = bank.edges[j], c = bank.edges[j + 1], hi = bank.edges[j + 2];
    uint64_t sum = uint64_t{kOneQ15} * power[c];
    for (uint32_t k = lo + 1; k < c; ++k) sum += uint64_t{((k - lo) << 15) / (c - lo)} * power[k];
    for (uint32_t k = c + 1; k < hi; ++k) sum += uint64_t{((hi - k) << 15) / (hi - c)} * power[k];
    logs[j] = dsp_log2_q8((sum >> 15) + 1);
  }
}

}  // namespace

Status dsp_mel_frames(const int16_t* x, size_t samples, size_t n, size_t hop, const DspMelBank& bank,
                      int32_t offset, uint8_t shift, int32_t* re, int32_t* im, uint32_t* power, int8_t* out,
                      size_t out_size) {
  if (!dsp_valid_length(n) || shift > 16 || !valid_bank(bank, n)) return Status::BadValue;
  const size_t frames = dsp_frame_count(samples, n, hop);
  if (frames == 0) return Status::BadValue;
  const size_t width = bank.coeffs > 0 ? bank.coeffs : bank.mels;
  if (out_size / width < frames) return Status::BufferFull;  // a division: frames * width cannot wrap
  for (size_t f = 0; f < frames; ++f) {
    const Status s = dsp_power_spectrum(x + f * hop, n, re, im, power);
    if (s != Status::Ok) return s;
    int32_t* logs = re;  // the spectrum is in `power` now; re's n values hold the mels <= n/2 logs
    log_mel(power, bank, logs);
    int8_t* row = out + f * width;
    if (bank.coeffs == 0) {
      for (size_t j = 0; j < bank.mels; ++j) row[j] = dsp_feature_int8(logs[j], offset, shift);
      continue;
    }
    for (size_t k = 0; k < bank.coeffs; ++k) {
      const int16_t* basis = bank.dct + k * bank.mels;
      int64_t acc = 0;
      for (size_t m = 0; m < bank.mels; ++m) acc += int64_t{basis[m]} * logs[m];
      row[k] = dsp_feature_int8((acc + (1 << 14)) >> 15, offset, shift);
    }
  }
  return Status::Ok;
}

}  // namespace tinyfl
