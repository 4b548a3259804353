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
// A graph, not only a chain: each layer names its input tensor(s) and its output tensor by an
// offset into one scratch arena (or the caller's model input / embedding buffer). The host plans
// the arena at build time (tinyfl.model.plan: liveness, reuse) and writes the plan and the arena
// size into the blob (format version 2), so the node needs no planner and its RAM need is known
// before flashing.
//
// Check at setup, run lean: backbone_parse() validates the whole blob once (CRC, lengths, shapes,
// ranges, every operand inside the arena, every input the unchanged output of an earlier layer,
// no overlap between a layer's inputs and its output); backbone_run() then does no checks beyond
// the caller's buffer sizes. The blob is read in place (it can live in flash) and must outlive the
// Backbone. No heap: activations live in a caller-provided arena.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "tinyfl/status.h"

namespace tinyfl {

constexpr uint16_t kBackboneBlobVersion = 2;
constexpr size_t kBackboneMaxLayers = 32;  // small CNNs with residual branches fit
constexpr size_t kBackboneHeaderSize = 40;
constexpr size_t kBackboneRecordSize = 20;
// Operand references of a layer: an arena offset, or one of the caller's buffers.
constexpr uint32_t kBackboneRefInput = 0xFFFFFFFFu;
constexpr uint32_t kBackboneRefEmbedding = 0xFFFFFFFEu;

enum class BackboneOp : uint8_t {
  Conv2D = 1,
  MaxPool2D = 2,
  Mean = 3,
  FullyConnected = 4,
  DepthwiseConv2D = 5,
  AvgPool2D = 6,
  Add = 7,
  Pad = 8,
  Requantize = 9,  // standalone RELU, RELU6 and QUANTIZE (int8 -> int8)
};

// One prepared layer; pointers point into the blob (little-endian, possibly unaligned).
struct BackboneLayer {
  BackboneOp op = BackboneOp::Conv2D;
  // Conv2D / DepthwiseConv2D / pools / Pad: NHWC shapes. Mean: in_h = outer, in_w = reduced
  // count, in_c = inner. FullyConnected: in_c = input features, out_c = output features.
  // Add / Requantize: in_c = out_c = element count (h = w = 1).
  uint16_t in_h = 0, in_w = 0, in_c = 0, out_h = 0, out_w = 0, out_c = 0;
  uint16_t k_h = 1, k_w = 1, stride_h = 1, stride_w = 1, dil_h = 1, dil_w = 1;
  uint16_t pad_top = 0, pad_left = 0, pad_front = 0;  // pad_front: Pad, before the channels
  int8_t in_zp = 0, out_zp = 0, act_min = -128, act_max = 127;
  int8_t in2_zp = 0;               // Add: second input's zero point
  bool mean_rescale = true;        // Mean: false = plain integer mean (same quantization)
  int8_t pad_value = 0;            // Pad
  uint8_t left_shift = 0;          // Add
  int32_t multiplier = 0;          // Mean (1/n folded in), Requantize, Add output
  int8_t shift = 0;                // ... its shift
  int32_t in_mults[2] = {0, 0};    // Add: input rescales
  int8_t in_shifts[2] = {0, 0};
  const uint8_t* bias = nullptr;   // i32[out_c]      (convolutions, FullyConnected)
  const uint8_t* mults = nullptr;  // i32[out_c]      (convolutions)
  const uint8_t* shifts = nullptr; // i8[out_c]       (convolutions)
  const uint8_t* scales = nullptr; // f64[out_c]      (FullyConnected)
  // Conv2D (out_c, k_h, k_w, in_c); DepthwiseConv2D (k_h, k_w, out_c); FC (out_c, in_c)
  const int8_t* weights = nullptr;
  uint32_t in_size = 0, out_size = 0;  // int8 elements consumed (per input) / produced
  uint8_t input_count = 1;
  uint32_t in_ref[2] = {0, 0};     // arena offset or kBackboneRef*
  uint32_t out_ref = 0;
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
  size_t arena_bytes = 0;  // scratch backbone_run() needs (the host's arena plan)
  uint32_t crc = 0;        // the blob's CRC32 (identifies the weights)

  uint32_t input_len() const { return static_cast<uint32_t>(in_h) * in_w * in_c; }
};

// Validates `blob` (len bytes) and fills `out`. Errors: Truncated (shorter than declared),
// BadLength (longer, or a layer's length disagrees with its shapes), BadMagic, BadVersion (any
// version but 2: a v1 blob must be re-exported), BadCrc, TooLarge (more than kBackboneMaxLayers
// layers), Unsupported (unknown op), BadValue (a shape, shift, multiplier, clamp, scale or operand
// reference outside its range, an input that is not the unchanged output of an earlier layer, a
// layer whose input and output overlap, or an embedding not written by the last layer),
// NonFinite (a non-finite scale).
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
