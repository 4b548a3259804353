#include "tinyfl/dsp_stage.h"

#include <math.h>

#include "tinyfl/crc32.h"
#include "tinyfl/cursor.h"

namespace tinyfl {

namespace {

constexpr uint16_t kRecordVersion = 1;
constexpr size_t kHeaderLen = 28;  // magic, version, block count, length, then the window fields
constexpr size_t kSpectralPayload = 10;
constexpr size_t kMelFixedPayload = 16;  // frame, hop, mels, coeffs, offset, shift, 3 x 0

bool is_fft_length(size_t n) { return n >= kDspMinFft && n <= kDspMaxFft && (n & (n - 1)) == 0; }

// One block record: kind, 0, payload length, payload. Returns its feature count (0 on error,
// with the error latched in `r` or `*status`).
size_t parse_block(Reader& r, const DspStage& s, DspBlock* b, Status* status) {
  const uint8_t kind = r.u8();
  r.u8();
  const uint16_t payload = r.u16();
  if (!r.ok()) return 0;
  if (kind == static_cast<uint8_t>(DspBlockKind::Spectral)) {
    b->kind = DspBlockKind::Spectral;
    b->bands = r.u16();
    b->offset = static_cast<int32_t>(r.u32());
    b->shift = r.u8();
    r.bytes(3);
    if (!r.ok()) return 0;
    if (payload != kSpectralPayload || !is_fft_length(s.window) || b->bands < 1 || b->bands > s.window / 2 ||
        b->shift > 16) {
      *status = Status::BadValue;
      return 0;
    }
    if (s.window > kDspWorkFft) {
      *status = Status::TooLarge;
      return 0;
    }
    return static_cast<size_t>(b->bands) * s.channels;
  }
  if (kind == static_cast<uint8_t>(DspBlockKind::Mel)) {
    b->kind = DspBlockKind::Mel;
    b->frame = r.u16();
    b->hop = r.u16();
    b->mels = r.u16();
    b->coeffs = r.u16();
    b->offset = static_cast<int32_t>(r.u32());
    b->shift = r.u8();
    r.bytes(3);
    if (!r.ok()) return 0;
    const size_t dct = static_cast<size_t>(b->coeffs) * b->mels, table = b->mels + 2u + dct;
    const size_t frames = dsp_frame_count(s.window, b->frame, b->hop);
    if (!is_fft_length(b->frame) || b->mels < 1 || b->mels > b->frame / 2 || b->coeffs > b->mels || b->shift > 16 ||
        frames == 0 || payload != kMelFixedPayload + 2u * table) {
      *status = Status::BadValue;
      return 0;
    }
    if (b->frame > kDspWorkFft || dct > kDspMaxMelTable) {  // edges fit: mels <= frame / 2
      *status = Status::TooLarge;
      return 0;
    }
    b->tables = r.bytes(2u * table);
    if (b->tables == nullptr) return 0;
    // Edges must rise and stay in the spectrum, as dsp_mel_frames requires (checked once here).
    for (size_t j = 0; j < b->mels + 2u; ++j) {
      const size_t e = static_cast<size_t>(b->tables[2 * j] | (b->tables[2 * j + 1] << 8));
      const size_t prev = j == 0 ? 0 : static_cast<size_t>(b->tables[2 * j - 2] | (b->tables[2 * j - 1] << 8));
      if (e > b->frame / 2u || e < prev) {
        *status = Status::BadValue;
        return 0;
      }
    }
    return frames * (b->coeffs != 0 ? b->coeffs : b->mels) * s.channels;
  }
  if (kind == static_cast<uint8_t>(DspBlockKind::Stats)) {
    b->kind = DspBlockKind::Stats;
    if (payload != 0) {
      *status = Status::BadValue;
      return 0;
    }
    if (s.window > kDspMaxStats) {
      *status = Status::TooLarge;
      return 0;
    }
    return kDspStatsPerChannel * s.channels;
  }
  *status = Status::Unsupported;
  return 0;
}

}  // namespace

Status dsp_stage_parse(const uint8_t* record, size_t len, DspStage* out) {
  Reader r(record, len);
  const uint8_t* magic = r.bytes(4);
  const uint16_t version = r.u16();
  const uint16_t count = r.u16();
  const uint32_t total = r.u32();
  if (!r.ok()) return r.status();
  if (magic[0] != 'T' || magic[1] != 'F' || magic[2] != 'D' || magic[3] != 'S') return Status::BadMagic;
  if (version != kRecordVersion) return Status::BadVersion;
  if (total != len || len < kHeaderLen + 4) return Status::BadLength;
  if (crc32(record, len - 4) != (Reader(record + len - 4, 4).u32())) return Status::BadCrc;
  DspStage s;
  s.window = r.u16();
  s.channels = r.u16();
  s.widen = r.u8();
  s.in_zp = static_cast<int8_t>(r.u8());
  r.bytes(2);
  s.in_scale = r.f32();
  s.features = r.u16();
  r.bytes(2);
  if (!r.ok()) return r.status();
  // (q - zp) * 2^widen must fit int16: |q - zp| <= 128 needs zp = 0 at widen 8, else <= 255 at 7.
  const bool widen_ok = s.widen <= 7 || (s.widen == 8 && s.in_zp == 0);
  if (count < 1 || s.window < 2 || s.channels < 1 || !widen_ok || !isfinite(s.in_scale) || !(s.in_scale > 0.0f))
    return Status::BadValue;
  if (count > kDspMaxBlocks || s.input_len() > kDspMaxInput || s.features > kDspMaxFeatures) return Status::TooLarge;
  size_t features = 0;
  Status status = Status::Ok;
  for (uint16_t i = 0; i < count && r.ok() && status == Status::Ok; ++i)
    features += parse_block(r, s, &s.blocks[i], &status);
  if (status != Status::Ok) return status;
  if (!r.ok()) return r.status();
  if (r.remaining() != 4 || features != s.features) return Status::BadValue;
  s.block_count = static_cast<uint8_t>(count);
  *out = s;
  return Status::Ok;
}

namespace {

void copy_channel(const DspStage& stage, DspWork& work, uint16_t c) {
  for (uint16_t t = 0; t < stage.window; ++t) work.channel[t] = work.samples[t * stage.channels + c];
}

// A mel block on every channel, channel after channel; its tables copied out of the record first
// (little-endian bytes there, native arrays for dsp_mel_frames).
Status run_mel(const DspStage& stage, const DspBlock& b, DspWork& work, int8_t* out, size_t out_len) {
  const size_t edges = b.mels + 2u, dct = static_cast<size_t>(b.coeffs) * b.mels;
  for (size_t j = 0; j < edges; ++j)
    work.mel_edges[j] = static_cast<uint16_t>(b.tables[2 * j] | (b.tables[2 * j + 1] << 8));
  const uint8_t* d = b.tables + 2 * edges;
  for (size_t j = 0; j < dct; ++j) work.mel_dct[j] = static_cast<int16_t>(d[2 * j] | (d[2 * j + 1] << 8));
  const DspMelBank bank{work.mel_edges, work.mel_dct, b.mels, b.coeffs};
  const size_t per_channel = dsp_frame_count(stage.window, b.frame, b.hop) * (b.coeffs != 0 ? b.coeffs : b.mels);
  Status s = Status::Ok;
  for (uint16_t c = 0; c < stage.channels && s == Status::Ok; ++c) {
    copy_channel(stage, work, c);
    s = dsp_mel_frames(work.channel, stage.window, b.frame, b.hop, bank, b.offset, b.shift, work.re, work.im,
                       work.power, out + c * per_channel, out_len - c * per_channel);
  }
  return s;
}

}  // namespace

Status dsp_stage_run(const DspStage& stage, const int8_t* window, size_t window_len, DspWork& work, int8_t* out,
                     size_t out_len) {
  if (window_len != stage.input_len()) return Status::WrongShape;
  if (out_len < stage.features) return Status::BufferFull;
  const int32_t gain = int32_t{1} << stage.widen;
  for (size_t i = 0; i < window_len; ++i)
    work.samples[i] = static_cast<int16_t>((static_cast<int32_t>(window[i]) - stage.in_zp) * gain);
  size_t pos = 0;
  Status s = Status::Ok;
  for (uint8_t i = 0; i < stage.block_count && s == Status::Ok; ++i) {
    const DspBlock& b = stage.blocks[i];
    if (b.kind == DspBlockKind::Spectral) {
      for (uint16_t c = 0; c < stage.channels && s == Status::Ok; ++c, pos += b.bands) {
        copy_channel(stage, work, c);
        s = dsp_spectral_bands(work.channel, stage.window, b.bands, b.offset, b.shift, work.re, work.im,
                               work.power, out + pos);
      }
    } else if (b.kind == DspBlockKind::Mel) {
      s = run_mel(stage, b, work, out + pos, out_len - pos);
      pos += dsp_frame_count(stage.window, b.frame, b.hop) * (b.coeffs != 0 ? b.coeffs : b.mels) * stage.channels;
    } else {
      s = dsp_time_stats(work.samples, stage.window, stage.channels, out + pos);
      pos += kDspStatsPerChannel * stage.channels;
    }
  }
  return s;
}

}  // namespace tinyfl
