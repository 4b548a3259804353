// The frozen int8 feature extractor ("backbone") of the node: a parser of the firmware model blob
// (docs/MODEL.md) and int8 kernels that reproduce LiteRT's reference interpreter byte for byte.
//
// Arithmetic: TFLite's integer-only inference (Jacob et al., "Quantization and Training of Neural
// Networks for Efficient Integer-Arithmetic-Only Inference", CVPR 2018). Int32 accumulators are
// rescaled by a Q31 multiplier and a power-of-two shift (gemmlowp's SaturatingRoundingDoubling-
// HighMul + RoundingDivideByPOT); per-channel FULLY_CONNECTED is rescaled in double, as LiteRT's
// reference kernel does. The host (tinyfl.model.backbone) derives every multiplier, shift, clamp
// and padding once and writes them into the blob, so the node never re-derives them.
//
// Check at setup, run lean: backbone_parse() validates the whole blob (CRC, lengths, shapes,
// chaining, ranges) and computes the scratch it needs; backbone_run() then does no checks beyond
// the caller's buffer sizes. The blob is read in place (it can live in flash) and must outlive the
// Backbone. No heap: activations live in a caller-provided arena.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "tinyfl/status.h"

namespace tinyfl {

constexpr uint16_t kBackboneBlobVersion = 1;
constexpr size_t kBackboneMaxLayers = 16;
constexpr size_t kBackboneHeaderSize = 32;

enum class BackboneOp : uint8_t { Conv2D = 1, MaxPool2D = 2, Mean = 3, FullyConnected = 4 };

// One prepared layer; pointers point into the blob (little-endian, possibly unaligned).
struct BackboneLayer {
  BackboneOp op = BackboneOp::Conv2D;
  // Conv2D / MaxPool2D: NHWC shapes. Mean: in_h = outer, in_w = reduced count, in_c = inner.
  // FullyConnected: in_c = input features, out_c = output features (h = w = 1).
  uint16_t in_h = 0, in_w = 0, in_c = 0, out_h = 0, out_w = 0, out_c = 0;
  uint16_t k_h = 1, k_w = 1, stride_h = 1, stride_w = 1, dil_h = 1, dil_w = 1;
  uint16_t pad_top = 0, pad_left = 0;
  int8_t in_zp = 0, out_zp = 0, act_min = -128, act_max = 127;
  int32_t multiplier = 0;          // Mean: Q31 multiplier (1/n folded in)
  int8_t shift = 0;                // Mean: its shift
  const uint8_t* bias = nullptr;   // i32[out_c]      (Conv2D, FullyConnected)
  const uint8_t* mults = nullptr;  // i32[out_c]      (Conv2D)
  const uint8_t* shifts = nullptr; // i8[out_c]       (Conv2D)
  const uint8_t* scales = nullptr; // f64[out_c]      (FullyConnected)
  const int8_t* weights = nullptr; // Conv2D (out_c, k_h, k_w, in_c); FC (out_c, in_c)
  uint32_t in_size = 0, out_size = 0;  // int8 elements consumed / produced
};

struct Backbone {
  uint16_t in_h = 0, in_w = 0, in_c = 0;  // input window (h, w, c), int8
  int8_t in_zp = 0;
  float in_scale = 0.0f;                  // real = in_scale * (q - in_zp)
  uint16_t embedding_len = 0;             // int8 outputs
  int8_t out_zp = 0;
  float out_scale = 0.0f;
  uint8_t layer_count = 0;
  BackboneLayer layers[kBackboneMaxLayers];
  size_t arena_bytes = 0;  // scratch backbone_run() needs (the largest in + out pair)
  uint32_t crc = 0;        // the blob's CRC32 (identifies the weights)

  uint32_t input_len() const { return static_cast<uint32_t>(in_h) * in_w * in_c; }
};

// Validates `blob` (len bytes) and fills `out`. Errors: Truncated (shorter than declared),
// BadLength (longer, or a layer's length disagrees with its shapes), BadMagic, BadVersion, BadCrc,
// TooLarge (more than kBackboneMaxLayers layers), Unsupported (unknown op), BadValue (a shape,
// shift, multiplier, clamp or scale outside its range, or layers that do not chain).
TINYFL_NODISCARD Status backbone_parse(const uint8_t* blob, size_t len, Backbone* out);

// Runs the backbone on one int8 input of m.input_len() values, writing m.embedding_len int8
// values. `arena` holds the intermediate activations (at least m.arena_bytes; BufferFull if
// smaller, WrongShape if input/embedding lengths differ). `arena_used` (optional) receives the
// bytes actually used, so a deployment can size its arena from data.
TINYFL_NODISCARD Status backbone_run(const Backbone& m, const int8_t* input, size_t input_len,
                                     int8_t* embedding, size_t embedding_len, uint8_t* arena,
                                     size_t arena_len, size_t* arena_used = nullptr);

// gemmlowp / TFLite fixed-point primitives (exposed for tests).
int32_t saturating_rounding_doubling_high_mul(int32_t a, int32_t b);
int32_t rounding_divide_by_pot(int32_t x, int exponent);
int32_t multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift);

}  // namespace tinyfl
