// Instruction counts of the node core on the emulated Cortex-M4F (bench/bench_firmware.py).
//
// QEMU runs this image with `-icount shift=0`: every guest instruction advances virtual time by
// 1 ns, and SysTick, clocked from the 25 MHz processor clock, ticks once per 40 instructions,
// deterministically. Each measurement repeats an operation N times between two SysTick reads and
// subtracts the same loop with nothing in it. Results go to UART0 as "bench <name> <value>" lines;
// the image then ends QEMU through semihosting.
#include <initializer_list>
#include <stdint.h>
#include <string.h>

#include "tinyfl/cache.h"
#include "tinyfl/dsp.h"
#include "tinyfl/head.h"
#include "tinyfl/hkdf.h"
#include "tinyfl/hmac.h"
#include "tinyfl/logline.h"
#include "tinyfl/models.h"
#include "tinyfl/quant.h"
#include "tinyfl/noise.h"
#include "tinyfl/secagg.h"
#include "tinyfl/sensor_stream.h"
#include "tinyfl/rng.h"
#include "tinyfl/sha256.h"
#include "tinyfl/wire.h"
#include "mel_tables.h"

namespace {

struct CmsdkUart {
  volatile uint32_t data, state, ctrl, intstatus, bauddiv;
};
CmsdkUart* const uart0 = reinterpret_cast<CmsdkUart*>(0x40004000);
volatile uint32_t* const syst_csr = reinterpret_cast<volatile uint32_t*>(0xE000E010);
volatile uint32_t* const syst_rvr = reinterpret_cast<volatile uint32_t*>(0xE000E014);
volatile uint32_t* const syst_cvr = reinterpret_cast<volatile uint32_t*>(0xE000E018);
constexpr uint32_t kInstructionsPerTick = 40;  // 25 MHz SysTick at 1 instruction per ns

void print(const char* s) {
  for (; *s; ++s) {
    while (uart0->state & 1u) {
    }
    uart0->data = static_cast<uint8_t>(*s);
  }
}

uint32_t ticks() { return *syst_cvr; }  // counts down
uint32_t elapsed(uint32_t start, uint32_t end) { return (start - end) & 0xFFFFFFu; }

[[noreturn]] void semihosting_exit() {
  // SYS_EXIT (0x18) with ADP_Stopped_ApplicationExit: QEMU (-semihosting) ends with status 0.
  register uint32_t op __asm__("r0") = 0x18;
  register uint32_t arg __asm__("r1") = 0x20026;
  __asm volatile("bkpt 0xAB" : : "r"(op), "r"(arg) : "memory");
  for (;;) {
  }
}

void report(const char* name, uint32_t total_ticks, uint32_t baseline_ticks, uint32_t reps, uint32_t dk) {
  const uint32_t instr = (total_ticks - baseline_ticks) * kInstructionsPerTick;
  tinyfl::LogLine line;
  line.str("bench ").str(name).str(" instructions_per_op=").f32(static_cast<float>(instr) / reps, 1);
  if (dk != 0) line.str(" per_weight=").f32(static_cast<float>(instr) / reps / dk, 3);
  line.str("\n");
  print(line.c_str());
}

constexpr uint16_t kD = 64;
float w[tinyfl::kHeadValues];
float w0[tinyfl::kHeadValues];
float x1[tinyfl::kMaxDim + 1];
int8_t codes[tinyfl::kHeadValues];
float scales[tinyfl::kMaxClasses];
uint8_t frame[4096];

__attribute__((noinline)) void empty_step(volatile uint32_t* sink) { *sink = *sink + 1; }

void init_head(uint16_t k) {
  tinyfl::Rng rng(7);
  for (uint32_t i = 0; i < tinyfl::kHeadValues; ++i) w[i] = w0[i] = (rng.uniform01() - 0.5f) * 0.1f;
  for (uint16_t i = 0; i < kD; ++i) x1[i] = rng.uniform01();
  x1[kD] = 1.0f;
  (void)k;
}

uint32_t baseline_ticks(uint32_t reps) {
  volatile uint32_t sink = 0;
  const uint32_t t0 = ticks();
  for (uint32_t r = 0; r < reps; ++r) empty_step(&sink);
  return elapsed(t0, ticks());
}

void name_with_k(char* name, const char* prefix, uint16_t k) {
  size_t n = strlen(prefix);
  memcpy(name, prefix, n);
  name[n] = static_cast<char>('0' + k);
  name[n + 1] = 0;
}

// One SGD step on one sample as a training pass runs it (batch size 1): the update of this sample
// and the forward pass of the next share one sweep over the head (head_step_stream).
void bench_step_stream(uint16_t k, uint32_t reps) {
  init_head(k);
  const uint32_t baseline = baseline_ticks(reps);
  float z[tinyfl::kMaxClasses], zn[tinyfl::kMaxClasses];
  tinyfl::head_logits(w, x1, kD, k, z);
  volatile float loss = 0.0f;
  const uint32_t t0 = ticks();
  for (uint32_t r = 0; r < reps; ++r) {
    loss = loss + tinyfl::head_step_stream(w, w0, x1, static_cast<uint8_t>(r % k), z, x1, zn, kD, k, 0.01f, 0.0f);
    memcpy(z, zn, sizeof z);
  }
  const uint32_t total = elapsed(t0, ticks());
  char name[40];
  name_with_k(name, "train_step_64x", k);
  report(name, total, baseline, reps, static_cast<uint32_t>(kD) * k);
}

// The same step on its own (forward, then update: two sweeps), as a single-sample API call costs.
void bench_step_one(uint16_t k, uint32_t reps) {
  init_head(k);
  const uint32_t baseline = baseline_ticks(reps);
  volatile float loss = 0.0f;
  const uint32_t t0 = ticks();
  for (uint32_t r = 0; r < reps; ++r)
    loss = loss + tinyfl::head_step_one(w, w0, x1, static_cast<uint8_t>(r % k), kD, k, 0.01f, 0.0f);
  const uint32_t total = elapsed(t0, ticks());
  char name[40];
  name_with_k(name, "isolated_step_64x", k);
  report(name, total, baseline, reps, static_cast<uint32_t>(kD) * k);
}

// A whole local round through the node's int8 embedding cache: per sample and epoch, everything
// included (dequantizing the embedding, shuffling, loss bookkeeping, the accuracy pass).
tinyfl::CacheStorage<> cache_storage;
tinyfl::EmbeddingCache cache(cache_storage);
tinyfl::HeadTrainer trainer;

void bench_train_local(uint16_t k, uint16_t batch) {
  constexpr uint32_t kSamples = 400;
  constexpr uint16_t kEpochs = 2;
  if (cache.configure(kD, k, 1.0f / 255.0f, -128) != tinyfl::Status::Ok) print("bench error cache\n");
  tinyfl::Rng rng(3);
  int8_t v[kD];
  for (uint32_t i = 0; i < kSamples; ++i) {
    for (uint16_t j = 0; j < kD; ++j) v[j] = static_cast<int8_t>(rng.next() & 0xFF);
    if (cache.add(v, static_cast<uint8_t>(i % k)) != tinyfl::Status::Ok) print("bench error add\n");
  }
  for (uint32_t i = 0; i < tinyfl::kHeadValues; ++i) w0[i] = 0.0f;
  tinyfl::TrainConfig cfg{kEpochs, batch, 0.05f, 0.0f, 0.0f};
  tinyfl::TrainResult result{};
  const uint32_t baseline = baseline_ticks(1);
  const uint32_t t0 = ticks();
  if (trainer.train_local(w0, w, kD, k, cache, cfg, rng, &result) != tinyfl::Status::Ok) print("bench error train\n");
  const uint32_t total = elapsed(t0, ticks());
  char name[48];
  name_with_k(name, batch == 1 ? "train_local_b1_per_sample_64x" : "train_local_b16_per_sample_64x", k);
  report(name, total, baseline, kSamples * kEpochs, static_cast<uint32_t>(kD) * k);
}

void bench_quantize(uint8_t bits, uint32_t reps) {
  constexpr uint16_t k = 6;
  volatile uint32_t sink = 0;
  uint32_t t0 = ticks();
  for (uint32_t r = 0; r < reps; ++r) empty_step(&sink);
  const uint32_t baseline = elapsed(t0, ticks());
  tinyfl::Rng rng(11);
  t0 = ticks();
  for (uint32_t r = 0; r < reps; ++r) {
    if (tinyfl::quantize(w, k, kD + 1, bits, tinyfl::kScalePerRow, rng, codes, scales) != tinyfl::Status::Ok)
      print("bench error quantize\n");
  }
  const uint32_t total = elapsed(t0, ticks());
  const char* name = bits == 8 ? "quantize_8bit_6x65" : bits == 4 ? "quantize_4bit_6x65" : "quantize_2bit_6x65";
  report(name, total, baseline, reps, 0);
}

// Encoding one 8-bit UPDATE of a HAR-sized head, with a CRC (a fleet without keys) and with its
// HMAC-SHA256 tag over the topic (a provisioned fleet): the difference is the cost of signing.
void bench_encode_update(uint32_t reps) {
  static const uint8_t key[tinyfl::kFrameKeyLen] = {1, 2, 3};
  static const char topic[] = "tinyfl/demo/nodes/node01/update";
  const tinyfl::FrameAuth auth{key, topic, sizeof topic - 1};
  tinyfl::UpdateFields u{};
  u.round_id = 1;
  u.n_samples = 400;
  u.loss = 0.6f;
  u.accuracy = 0.9f;
  u.update_norm = 1.0f;
  u.delta.bits = 8;
  u.delta.scale_mode = 1;
  u.delta.rows = 6;
  u.delta.cols = kD + 1;
  u.delta.codes = codes;
  u.delta.scales = scales;
  volatile uint32_t sink = 0;
  uint32_t t0 = ticks();
  for (uint32_t r = 0; r < reps; ++r) empty_step(&sink);
  const uint32_t baseline = elapsed(t0, ticks());
  for (int signed_frame = 0; signed_frame < 2; ++signed_frame) {
    u.auth = signed_frame != 0 ? &auth : nullptr;
    size_t len = 0;
    t0 = ticks();
    for (uint32_t r = 0; r < reps; ++r) {
      if (tinyfl::encode_update(u, frame, sizeof frame, &len) != tinyfl::Status::Ok) print("bench error encode\n");
    }
    const uint32_t total = elapsed(t0, ticks());
    report(signed_frame != 0 ? "encode_update_8bit_6x65_signed" : "encode_update_8bit_6x65", total, baseline,
           reps, 0);
  }
}

// Secure aggregation on a HAR-sized head (6 x 65 values): one peer's round seed, and adding one
// peer's mask at 16 bits (the width for 8-bit codes of up to 129 nodes). A node masks against
// every other selected node: the per-round cost is (round seed + mask) times the peers.
uint32_t masked_values[6 * 65];

void bench_secagg(uint32_t reps) {
  static const uint8_t pair_seed[32] = {9, 8, 7};
  uint8_t round_seed[tinyfl::kRoundSeedLen];
  volatile uint32_t sink = 0;
  uint32_t t0 = ticks();
  for (uint32_t r = 0; r < reps; ++r) empty_step(&sink);
  const uint32_t baseline = elapsed(t0, ticks());
  t0 = ticks();
  for (uint32_t r = 0; r < reps; ++r)
    if (tinyfl::secagg_round_seed(pair_seed, r + 1, round_seed) != tinyfl::Status::Ok) print("bench error seed\n");
  report("secagg_round_seed", elapsed(t0, ticks()), baseline, reps, 0);
  t0 = ticks();
  for (uint32_t r = 0; r < reps; ++r)
    if (tinyfl::secagg_apply_mask(round_seed, masked_values, 6 * 65, 16, (r & 1u) == 0) != tinyfl::Status::Ok)
      print("bench error mask\n");
  report("secagg_mask_6x65_16bit", elapsed(t0, ticks()), baseline, reps, 0);
}

// Distributed DP's node noise on the HAR head (6 x 65 values): the discrete Gaussian sampler
// (tinyfl/noise.h) at a small share (sigma^2 = 8, the least the coordinator sends) and at the
// share of 100 nodes at epsilon 1 (about 7e4 code units squared), bit stream included; and the
// noise key's part of one peer (HKDF-Expand of its pair seed).
void bench_noise(uint32_t reps) {
  static const uint8_t key[tinyfl::kNoiseKeyLen] = {3, 1, 4, 1, 5};
  volatile uint32_t sink = 0;
  uint32_t t0 = ticks();
  for (uint32_t r = 0; r < reps; ++r) empty_step(&sink);
  const uint32_t baseline = elapsed(t0, ticks());
  for (uint32_t var : {uint32_t{8}, uint32_t{70000}}) {
    t0 = ticks();
    for (uint32_t r = 0; r < reps; ++r)
      if (tinyfl::add_discrete_gaussian(key, r + 1, var, masked_values, 6 * 65, 16) != tinyfl::Status::Ok)
        print("bench error noise\n");
    report(var == 8 ? "noise_6x65_var8" : "noise_6x65_var70000", elapsed(t0, ticks()), baseline, reps, 0);
  }
  uint8_t acc[tinyfl::kNoiseKeyLen] = {};
  t0 = ticks();
  for (uint32_t r = 0; r < reps; ++r)
    if (tinyfl::noise_key_add(key, acc) != tinyfl::Status::Ok) print("bench error noise key\n");
  report("noise_key_per_peer", elapsed(t0, ticks()), baseline, reps, 0);
}

// The DSP stage's spectral block (docs/DSP.md): Hann window, fixed-point FFT and power spectrum of
// one window, at 256 and 1024 samples (issue target: a 1024-point real FFT well under 1 M).
// The DSP blocks' buffers are the stage's work (tinyfl/dsp_stage.h), which shares the backbone's
// scratch on a node as here: the bench image's RAM holds 1 s of audio besides.
tinyfl::BackboneWork backbone_work;
int16_t* const dsp_x = backbone_work.dsp.channel;
int32_t* const dsp_re = backbone_work.dsp.re;
int32_t* const dsp_im = backbone_work.dsp.im;
uint32_t* const dsp_power = backbone_work.dsp.power;

void bench_dsp(uint32_t reps) {
  tinyfl::Rng rng(11);
  for (size_t i = 0; i < tinyfl::kDspMaxFft; ++i) dsp_x[i] = static_cast<int16_t>(rng.next() >> 16);
  volatile uint32_t sink = 0;
  uint32_t t0 = ticks();
  for (uint32_t r = 0; r < reps; ++r) empty_step(&sink);
  const uint32_t baseline = elapsed(t0, ticks());
  for (size_t n : {size_t{256}, size_t{1024}}) {
    t0 = ticks();
    for (uint32_t r = 0; r < reps; ++r)
      if (tinyfl::dsp_power_spectrum(dsp_x, n, dsp_re, dsp_im, dsp_power) != tinyfl::Status::Ok) print("bench error dsp\n");
    report(n == 256 ? "dsp_power_spectrum_256" : "dsp_power_spectrum_1024", elapsed(t0, ticks()), baseline, reps, 0);
  }
  static int8_t features[32];
  t0 = ticks();
  for (uint32_t r = 0; r < reps; ++r)
    if (tinyfl::dsp_spectral_bands(dsp_x, 1024, 32, 2048, 4, dsp_re, dsp_im, dsp_power, features) != tinyfl::Status::Ok)
      print("bench error bands\n");
  report("dsp_spectral_bands_1024x32", elapsed(t0, ticks()), baseline, reps, 0);
}

// The DSP stage's other blocks: the mel block over 1 s of 16 kHz audio framed 512 / hop 256 (61
// frames), 40 mel filters, 13 MFCC or the 40 log mel energies (tables from mel_tables.h, as the
// host makes them), and over one frame; the statistics block on a 128-sample, 6-channel window
// (the HAR window's shape).
constexpr size_t kAudioSamples = 16000;
int16_t dsp_audio[kAudioSamples];

void bench_dsp_blocks(uint32_t reps) {
  tinyfl::Rng rng(13);
  for (int16_t& v : dsp_audio) v = static_cast<int16_t>(rng.next() >> 16);
  volatile uint32_t sink = 0;
  uint32_t t0 = ticks();
  for (uint32_t r = 0; r < reps; ++r) empty_step(&sink);
  const uint32_t baseline = elapsed(t0, ticks());
  static int8_t features[tinyfl::dsp_frame_count(kAudioSamples, 512, 256) * bench::kMelMels];
  struct Case {
    const char* name;
    size_t samples;
    uint16_t coeffs;
  };
  static const Case cases[] = {{"dsp_mfcc_1s_16k_512h256_40x13", kAudioSamples, bench::kMelCoeffs},
                               {"dsp_log_mel_1s_16k_512h256_40", kAudioSamples, 0},
                               {"dsp_mfcc_frame_512_40x13", 512, bench::kMelCoeffs}};
  for (const Case& c : cases) {
    const tinyfl::DspMelBank bank{bench::kMelEdges, bench::kMelDct, bench::kMelMels, c.coeffs};
    t0 = ticks();
    for (uint32_t r = 0; r < reps; ++r)
      if (tinyfl::dsp_mel_frames(dsp_audio, c.samples, 512, 256, bank, -8192, 7, dsp_re, dsp_im, dsp_power, features,
                                 sizeof features) != tinyfl::Status::Ok)
        print("bench error mel\n");
    report(c.name, elapsed(t0, ticks()), baseline, reps, 0);
  }
  static int8_t stats[6 * tinyfl::kDspStatsPerChannel];
  t0 = ticks();
  for (uint32_t r = 0; r < reps; ++r)
    if (tinyfl::dsp_time_stats(dsp_audio, 128, 6, stats) != tinyfl::Status::Ok) print("bench error stats\n");
  report("dsp_time_stats_128x6", elapsed(t0, ticks()), baseline, reps, 0);
}

// One window through each compiled backbone (models/<task>), as a node embeds its data at boot.
// The input is a fixed pseudo-random window: int8 kernels take the same path whatever the values.
int8_t window[2048];

void bench_backbones(uint32_t reps) {
  for (size_t m = 0; m < tinyfl::compiled_model_count(); ++m) {
    const tinyfl::CompiledModel& model = tinyfl::compiled_model(m);
    if (tinyfl::prepare_compiled_model(model, backbone_work) != tinyfl::Status::Ok ||
        backbone_work.model.input_len() > sizeof window) {
      print("bench error backbone\n");
      continue;
    }
    tinyfl::Rng rng(5);
    for (int8_t& v : window) v = static_cast<int8_t>(rng.next() & 0xFF);
    const uint32_t baseline = baseline_ticks(reps);
    int8_t embedding[tinyfl::kMaxDim];
    const uint32_t t0 = ticks();
    for (uint32_t r = 0; r < reps; ++r) {
      if (tinyfl::backbone_run(backbone_work.model, window, backbone_work.model.input_len(), embedding,
                               backbone_work.model.embedding_len, backbone_work.arena,
                               sizeof backbone_work.arena) != tinyfl::Status::Ok)
        print("bench error backbone run\n");
    }
    const uint32_t total = elapsed(t0, ticks());
    char name[48] = "backbone_";
    strncat(name, model.task, sizeof name - strlen(name) - 1);
    report(name, total, baseline, reps, 0);
    if (backbone_work.stage.block_count != 0 && backbone_work.stage.input_len() <= sizeof window) {
      // The model's DSP stage on one raw window, before the backbone (docs/DSP.md).
      const uint32_t d0 = ticks();
      for (uint32_t r = 0; r < reps; ++r)
        if (tinyfl::dsp_stage_run(backbone_work.stage, window, backbone_work.stage.input_len(), backbone_work.dsp,
                                  backbone_work.features, sizeof backbone_work.features) != tinyfl::Status::Ok)
          print("bench error dsp stage run\n");
      char stage_name[48] = "dsp_stage_";
      strncat(stage_name, model.task, sizeof stage_name - strlen(stage_name) - 1);
      report(stage_name, elapsed(d0, ticks()), baseline, reps, 0);
    }
    tinyfl::LogLine line;
    line.str("bench ").str(name).str("_arena_bytes value=").u32(static_cast<uint32_t>(backbone_work.model.arena_bytes)).str("\n");
    print(line.c_str());
  }
}

// The longest gap between two polls of a node on a live sensor: one SensorStream::step(), which
// embeds the window the readings completed (DSP stage, backbone) and offers it to the reservoir.
// Readings go in untimed; only the step is counted.
tinyfl::SensorStream stream(backbone_work, cache, 3);

void bench_sensor_stream(uint32_t reps) {
  for (size_t m = 0; m < tinyfl::compiled_model_count(); ++m) {
    const tinyfl::CompiledModel& model = tinyfl::compiled_model(m);
    if (stream.begin(model, 0, 6) != tinyfl::Status::Ok || stream.set_label(0) != tinyfl::Status::Ok) continue;
    tinyfl::Rng rng(9);
    const uint32_t baseline = baseline_ticks(reps);
    uint32_t total = 0;
    for (uint32_t r = 0; r < reps; ++r) {
      for (uint16_t t = 0; t < stream.window(); ++t) {
        for (uint16_t c = 0; c < stream.channels(); ++c) window[c] = static_cast<int8_t>(rng.next() >> 24);
        if (stream.add_codes(window) != tinyfl::Status::Ok) print("bench error stream\n");
      }
      const uint32_t t0 = ticks();
      if (stream.step() != tinyfl::Status::Ok) print("bench error stream step\n");
      total += elapsed(t0, ticks());  // one step stays below the 24-bit counter's period
    }
    char name[48] = "sensor_stream_step_";
    strncat(name, model.task, sizeof name - strlen(name) - 1);
    report(name, total, baseline, reps, 0);
  }
}

// Crypto primitives (docs/CRYPTO.md): one SHA-256 compression, HMAC-SHA256 over a 600-byte frame
// (the size of a HAR UPDATE) with and without the key set-up, HKDF-Expand per 32 output bytes.
uint8_t crypto_key[32];
uint8_t crypto_out[32];

void bench_crypto(uint32_t reps) {
  tinyfl::Rng rng(13);
  for (uint8_t& b : frame) b = static_cast<uint8_t>(rng.next());
  for (uint8_t& b : crypto_key) b = static_cast<uint8_t>(rng.next());
  const uint32_t baseline = baseline_ticks(reps);

  // One 64-byte block: init() and one update() of a whole block run exactly one compression.
  tinyfl::Sha256 sha;
  uint32_t t0 = ticks();
  for (uint32_t r = 0; r < reps; ++r) {
    sha.init();
    sha.update(frame, 64);
  }
  report("sha256_one_64B_block", elapsed(t0, ticks()), baseline, reps, 0);

  // A 64-byte message in one call: two compressions (the padding takes a block of its own).
  t0 = ticks();
  for (uint32_t r = 0; r < reps; ++r) tinyfl::sha256(frame, 64, crypto_out);
  report("sha256_64B_message", elapsed(t0, ticks()), baseline, reps, 0);

  // HMAC of a 600-byte frame in one call, key set-up included (13 compressions:
  // 2 for the keyed pads, 10 for the message and its padding, 1 for the outer hash).
  t0 = ticks();
  for (uint32_t r = 0; r < reps; ++r) tinyfl::hmac_sha256(crypto_key, 32, frame, 600, crypto_out);
  report("hmac_sha256_600B_frame", elapsed(t0, ticks()), baseline, reps, 0);

  // The same with the key loaded once (a node keeps its keyed context): 11 compressions.
  tinyfl::HmacSha256 mac;
  mac.init(crypto_key, 32);
  t0 = ticks();
  for (uint32_t r = 0; r < reps; ++r) {
    mac.update(frame, 600);
    mac.final(crypto_out);
  }
  report("hmac_sha256_600B_frame_keyed", elapsed(t0, ticks()), baseline, reps, 0);
  mac.wipe();

  // HKDF-Expand: 32 output bytes per read from a stream with a 16-byte info string (round id and
  // two peer ids' worth), i.e. one HMAC block of T(i-1) || info || i per 32 bytes.
  tinyfl::HkdfExpand stream;
  constexpr uint32_t kBlocks = 200;  // within RFC 5869's 255 blocks per stream
  if (stream.init(crypto_key, 32, frame, 16) != tinyfl::Status::Ok) print("bench error hkdf\n");
  const uint32_t hkdf_baseline = baseline_ticks(kBlocks);
  t0 = ticks();
  for (uint32_t r = 0; r < kBlocks; ++r) {
    if (stream.read(crypto_out, 32) != tinyfl::Status::Ok) print("bench error hkdf read\n");
  }
  report("hkdf_expand_per_32B", elapsed(t0, ticks()), hkdf_baseline, kBlocks, 0);
  stream.wipe();

  // tag_equal on a 16-byte tag: the count must not depend on where (or whether) the tags differ.
  uint8_t tag[16], forged[16];
  memcpy(tag, crypto_out, sizeof tag);
  const char* const names[3] = {"tag_equal_16B_same", "tag_equal_16B_first_byte_differs",
                                "tag_equal_16B_last_byte_differs"};
  volatile bool verdict = false;
  for (int c = 0; c < 3; ++c) {
    memcpy(forged, tag, sizeof forged);
    if (c == 1) forged[0] ^= 1u;
    if (c == 2) forged[15] ^= 0x80u;
    t0 = ticks();
    for (uint32_t r = 0; r < reps; ++r) verdict = tinyfl::tag_equal(tag, forged, sizeof tag);
    report(names[c], elapsed(t0, ticks()), baseline, reps, 0);
    if (verdict != (c == 0)) print("bench error tag_equal\n");
  }
}

}  // namespace

int main() {
  uart0->bauddiv = 16;
  uart0->ctrl = 1;  // TX enable
  *syst_rvr = 0xFFFFFF;
  *syst_cvr = 0;
  *syst_csr = 0x5;  // enable, processor clock, no interrupt
  print("bench start\n");
  for (uint16_t k : {uint16_t{2}, uint16_t{5}, uint16_t{6}, uint16_t{8}}) bench_step_stream(k, 2000);
  for (uint16_t k : {uint16_t{5}, uint16_t{6}, uint16_t{8}}) bench_step_one(k, 2000);
  bench_train_local(6, 1);
  bench_train_local(6, 16);
  bench_quantize(8, 200);
  bench_quantize(4, 200);
  bench_quantize(2, 200);
  bench_encode_update(200);
  bench_backbones(4);
  bench_crypto(200);
  bench_secagg(20);
  bench_noise(4);
  bench_dsp(10);
  bench_dsp_blocks(4);
  bench_sensor_stream(4);
  print("bench done\n");
  semihosting_exit();
}
