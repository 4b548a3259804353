// From a data blob to the node's sample cache. Feature blobs (kind 1) are copied as they are; raw
// sensor windows (kind 2) go through the frozen int8 backbone first, one window at a time, so only
// one embedding and the backbone's scratch arena are ever live besides the cache.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "tinyfl/backbone.h"
#include "tinyfl/blob.h"
#include "tinyfl/config.h"
#include "tinyfl/crc32.h"
#include "tinyfl/status.h"

namespace tinyfl {

// What the windows of a raw-window blob must be: their length in int8 codes and the codes'
// quantization (scale and zero point equal, so the codes are the input byte for byte).
struct WindowShape {
  uint32_t len = 0;
  float scale = 0.0f;
  int8_t zero_point = 0;
};

// The windows are the backbone's input as they are (a model without a DSP stage).
struct DirectInput {
  const Backbone& model;
  WindowShape shape() const { return {model.input_len(), model.in_scale, model.in_zp}; }
  Status run(const int8_t* window, const int8_t** input) {
    *input = window;
    return Status::Ok;
  }
};

// Checks that `blob` holds raw windows of `shape` for this backbone: kind 2, one window per sample
// of exactly shape.len codes in shape's quantization, and an embedding that fits kMaxDim.
// WrongShape / WrongModel / TooLarge otherwise.
[[nodiscard]] Status check_windows(const BlobView& blob, const WindowShape& shape, const Backbone& model);
[[nodiscard]] inline Status check_windows(const BlobView& blob, const Backbone& model) {
  return check_windows(blob, DirectInput{model}.shape(), model);
}

// Runs every window of `blob` in order through `front` (anything with shape() and
// run(window, &input): DirectInput, or a model's DSP stage) and the backbone, and hands each
// embedding to `sink(index, embedding, length, label)`, which returns a Status (anything but Ok
// stops the loop and is returned). `arena` is the backbone's scratch (at least
// model.arena_bytes); the front-end may use it too, since it finishes before the backbone starts.
template <class Front, class Sink>
[[nodiscard]] Status embed_windows_through(const BlobView& blob, const Backbone& model, Front& front, uint8_t* arena,
                                           size_t arena_len, Sink&& sink) {
  Status s = check_windows(blob, front.shape(), model);
  int8_t embedding[kMaxDim];
  for (uint32_t i = 0; s == Status::Ok && i < blob.n_samples; ++i) {
    const int8_t* input = nullptr;
    s = front.run(blob.sample(i), &input);
    if (s == Status::Ok) s = backbone_run(model, input, model.input_len(), embedding, model.embedding_len, arena, arena_len);
    if (s == Status::Ok) s = sink(i, static_cast<const int8_t*>(embedding), model.embedding_len, blob.label(i));
  }
  return s;
}

template <class Sink>
[[nodiscard]] Status embed_windows(const BlobView& blob, const Backbone& model, uint8_t* arena, size_t arena_len,
                                   Sink&& sink) {
  DirectInput front{model};
  return embed_windows_through(blob, model, front, arena, arena_len, static_cast<Sink&&>(sink));
}

// What loading produced, for the boot log: samples seen and the CRC32 of every embedding in
// order (the host recomputes it from the numpy backbone to check the node, e.g. under QEMU).
struct LoadSummary {
  uint32_t samples = 0;
  uint32_t embedding_crc = 0;
};

// Fills `cache` (EmbeddingCache or anything with configure/add) from a raw-window blob through
// `front` and `model`; the cache keeps the newest samples when the blob holds more than it can.
template <class Front, class Cache>
[[nodiscard]] Status load_windows_through(const BlobView& blob, const Backbone& model, Front& front, uint8_t* arena,
                                          size_t arena_len, Cache& cache, LoadSummary* summary) {
  Status s = check_windows(blob, front.shape(), model);
  if (s == Status::Ok) s = cache.configure(model.embedding_len, blob.n_classes, model.out_scale, model.out_zp);
  if (s != Status::Ok) return s;
  LoadSummary sum;
  s = embed_windows_through(blob, model, front, arena, arena_len,
                            [&](uint32_t, const int8_t* e, size_t len, uint8_t label) {
                              sum.samples++;
                              sum.embedding_crc = crc32(reinterpret_cast<const uint8_t*>(e), len, sum.embedding_crc);
                              return cache.add(e, label);
                            });
  if (summary != nullptr) *summary = sum;
  return s;
}

template <class Cache>
[[nodiscard]] Status load_windows(const BlobView& blob, const Backbone& model, uint8_t* arena, size_t arena_len,
                                  Cache& cache, LoadSummary* summary) {
  DirectInput front{model};
  return load_windows_through(blob, model, front, arena, arena_len, cache, summary);
}

}  // namespace tinyfl
