// The DSP stage (tinyfl/dsp_stage.h) against testvectors/dsp/stage.bin, which the host's
// tinyfl.dsp.stage computed (tools/gen_dsp_tables.py): every record parses, and every raw window
// gives the host's features bit for bit. Then the parser's refusals: every truncation and bit flip
// of a record, and records with consistent length and CRC but a field out of range.
#include "../check.h"
#include "tinyfl/crc32.h"
#include "tinyfl/dsp_stage.h"

using namespace tinyfl;

namespace {

unsigned char g_file[1 << 16];
uint8_t g_record[256];
DspWork g_work;
int8_t g_features[kDspMaxFeatures];

size_t u16_at(const unsigned char* p) { return static_cast<size_t>(p[0] | (p[1] << 8)); }

// The first stage of the vectors: 128 x 6, spectral (16 bands) then stats, 50 bytes.
size_t first_record(uint8_t* out) {
  const long len = tinyfl_test::read_file(tinyfl_test::vector_path("dsp/stage-record.bin"), g_file, sizeof g_file);
  CHECK(len > 0 && static_cast<size_t>(len) <= sizeof g_record);
  memcpy(out, g_file, static_cast<size_t>(len));
  return static_cast<size_t>(len);
}

// Sets the length field and CRC of a record of `len` bytes after an edit.
void seal(uint8_t* r, size_t len) {
  const uint32_t total = static_cast<uint32_t>(len);
  for (int i = 0; i < 4; ++i) r[8 + i] = static_cast<uint8_t>(total >> (8 * i));
  const uint32_t crc = crc32(r, len - 4);
  for (int i = 0; i < 4; ++i) r[len - 4 + i] = static_cast<uint8_t>(crc >> (8 * i));
}

Status parse_edited(size_t at, uint8_t value) {
  uint8_t r[256];
  const size_t len = first_record(r);
  r[at] = value;
  seal(r, len);
  DspStage s;
  return dsp_stage_parse(r, len, &s);
}

}  // namespace

TINYFL_TEST(stages_match_the_host_bit_for_bit) {
  const long len = tinyfl_test::read_file(tinyfl_test::vector_path("dsp/stage.bin"), g_file, sizeof g_file);
  CHECK(len > 0);
  long pos = 0;
  int stages = 0, windows = 0, bad = 0;
  while (pos + 2 <= len) {
    const size_t rlen = u16_at(g_file + pos);
    pos += 2;
    DspStage stage;
    CHECK(dsp_stage_parse(g_file + pos, rlen, &stage) == Status::Ok);
    pos += static_cast<long>(rlen);
    const size_t n = u16_at(g_file + pos);
    pos += 2;
    for (size_t w = 0; w < n; ++w) {
      const int8_t* window = reinterpret_cast<const int8_t*>(g_file + pos);
      pos += static_cast<long>(stage.input_len());
      CHECK(dsp_stage_run(stage, window, stage.input_len(), g_work, g_features, sizeof g_features) == Status::Ok);
      for (size_t f = 0; f < stage.features; ++f)
        if (g_features[f] != static_cast<int8_t>(g_file[pos + static_cast<long>(f)])) ++bad;
      pos += static_cast<long>(stage.features);
      ++windows;
    }
    ++stages;
  }
  CHECK_EQ(pos, len);
  CHECK_EQ(bad, 0);
  CHECK_EQ(stages, 6);
  CHECK(windows >= 42);
}

TINYFL_TEST(the_first_record_describes_the_stage_the_host_wrote) {
  const size_t len = first_record(g_record);
  DspStage s;
  CHECK(dsp_stage_parse(g_record, len, &s) == Status::Ok);
  CHECK_EQ(s.window, 128);
  CHECK_EQ(s.channels, 6);
  CHECK_EQ(s.widen, 8);
  CHECK_EQ(s.features, 16 * 6 + kDspStatsPerChannel * 6);
  CHECK_EQ(s.block_count, 2);
  CHECK(s.blocks[0].kind == DspBlockKind::Spectral && s.blocks[0].bands == 16 && s.blocks[0].offset == 768 &&
        s.blocks[0].shift == 5);
  CHECK(s.blocks[1].kind == DspBlockKind::Stats);
}

TINYFL_TEST(every_truncation_and_bit_flip_is_refused) {
  const size_t len = first_record(g_record);
  DspStage s;
  for (size_t n = 0; n < len; ++n) CHECK(dsp_stage_parse(g_record, n, &s) != Status::Ok);
  for (size_t i = 0; i < len; ++i)
    for (int bit = 0; bit < 8; ++bit) {
      g_record[i] ^= static_cast<uint8_t>(1u << bit);
      CHECK(dsp_stage_parse(g_record, len, &s) != Status::Ok);
      g_record[i] ^= static_cast<uint8_t>(1u << bit);
    }
  CHECK(dsp_stage_parse(g_record, len, &s) == Status::Ok);
}

TINYFL_TEST(sealed_records_with_a_field_out_of_range_are_refused) {
  CHECK(parse_edited(0, 'X') == Status::BadMagic);
  CHECK(parse_edited(4, 2) == Status::BadVersion);
  CHECK(parse_edited(6, 0) == Status::BadValue);           // no block
  CHECK(parse_edited(6, 9) == Status::TooLarge);           // more blocks than kDspMaxBlocks
  CHECK(parse_edited(16, 9) == Status::BadValue);          // widen 9 overflows int16
  CHECK(parse_edited(17, 1) == Status::BadValue);          // widen 8 with a zero point
  CHECK(parse_edited(23, 0xFF) == Status::BadValue);       // scale NaN
  CHECK(parse_edited(24, 121) == Status::BadValue);        // features do not add up
  CHECK(parse_edited(28, 4) == Status::Unsupported);       // unknown block kind
  CHECK(parse_edited(30, 9) == Status::BadValue);          // spectral payload length
  CHECK(parse_edited(32, 0) == Status::BadValue);          // zero bands
  CHECK(parse_edited(32, 65) == Status::BadValue);         // more bands than bins
  CHECK(parse_edited(38, 17) == Status::BadValue);         // shift above 16
  CHECK(parse_edited(44, 1) == Status::BadValue);          // a stats block with a payload
  CHECK(parse_edited(13, 0x08) == Status::TooLarge);       // 2048 x 6 values
  uint8_t r[256];
  const size_t len = first_record(r);
  r[len] = 0;  // one trailing byte before the CRC
  seal(r, len + 1);
  DspStage s;
  CHECK(dsp_stage_parse(r, len + 1, &s) == Status::BadValue);
}

// The fifth stage of the vectors: 600 x 2, mel (128-sample frames every 96, 16 filters, 8 MFCC)
// then stats. Its first edge raised above the second must be refused (edges must rise).
TINYFL_TEST(a_mel_block_with_falling_edges_is_refused) {
  const long len = tinyfl_test::read_file(tinyfl_test::vector_path("dsp/stage.bin"), g_file, sizeof g_file);
  CHECK(len > 0);
  long pos = 0;
  for (int i = 0; i < 4; ++i) {  // skip four stages: record, then windows of raw codes and features
    const size_t rlen = u16_at(g_file + pos);
    DspStage s;
    CHECK(dsp_stage_parse(g_file + pos + 2, rlen, &s) == Status::Ok);
    pos += 2 + static_cast<long>(rlen);
    pos += 2 + static_cast<long>(u16_at(g_file + pos) * (s.input_len() + s.features));
  }
  const size_t rlen = u16_at(g_file + pos);
  uint8_t r[1024];
  CHECK(rlen <= sizeof r);
  memcpy(r, g_file + pos + 2, rlen);
  DspStage s;
  CHECK(dsp_stage_parse(r, rlen, &s) == Status::Ok);
  CHECK(s.blocks[0].kind == DspBlockKind::Mel && s.blocks[0].mels == 16 && s.blocks[0].coeffs == 8);
  CHECK_EQ(s.features, ((600 - 128) / 96 + 1) * 8 * 2 + kDspStatsPerChannel * 2);
  const size_t edges = 28 + 4 + 16;  // header, block header, fixed mel payload
  r[edges] = 0xFF;                   // edge 0 = 255 > edge 1, and past the 64 bins
  seal(r, rlen);
  CHECK(dsp_stage_parse(r, rlen, &s) == Status::BadValue);
}

TINYFL_TEST(runs_refuse_another_window_length_or_a_short_output) {
  const size_t len = first_record(g_record);
  DspStage s;
  CHECK(dsp_stage_parse(g_record, len, &s) == Status::Ok);
  static int8_t window[128 * 6];
  CHECK(dsp_stage_run(s, window, sizeof window - 1, g_work, g_features, sizeof g_features) == Status::WrongShape);
  CHECK(dsp_stage_run(s, window, sizeof window, g_work, g_features, s.features - 1u) == Status::BufferFull);
  CHECK(dsp_stage_run(s, window, sizeof window, g_work, g_features, s.features) == Status::Ok);
}

int main() { return tinyfl_test::run_all(); }
