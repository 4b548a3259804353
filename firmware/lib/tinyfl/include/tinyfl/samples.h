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

// Checks that `blob` holds raw windows this backbone takes: kind 2, one window per sample of
// exactly the model's input length, the model's input quantization (scale and zero point equal, so
// the codes are the model's input tensor byte for byte), and an embedding that fits kMaxDim.
// WrongShape / WrongModel / TooLarge otherwise.
[[nodiscard]] Status check_windows(const BlobView& blob, const Backbone& model);

// Runs the backbone over every window of `blob` in order and hands each embedding to
// `sink(index, embedding, length, label)`, which returns a Status (anything but Ok stops the
// loop and is returned). `arena` is the backbone's scratch (at least model.arena_bytes).
template <class Sink>
[[nodiscard]] Status embed_windows(const BlobView& blob, const Backbone& model, uint8_t* arena,
                                   size_t arena_len, Sink&& sink) {
  Status s = check_windows(blob, model);
  int8_t embedding[kMaxDim];
  for (uint32_t i = 0; s == Status::Ok && i < blob.n_samples; ++i) {
    s = backbone_run(model, blob.sample(i), blob.dim, embedding, model.embedding_len, arena, arena_len);
    if (s == Status::Ok) s = sink(i, static_cast<const int8_t*>(embedding), model.embedding_len, blob.label(i));
  }
  return s;
}

// What loading produced, for the boot log: samples seen and the CRC32 of every embedding in
// order (the host recomputes it from the numpy backbone to check the node, e.g. under QEMU).
struct LoadSummary {
  uint32_t samples = 0;
  uint32_t embedding_crc = 0;
};

// Fills `cache` (EmbeddingCache or anything with configure/add) from a raw-window blob through
// `model`; the cache keeps the newest samples when the blob holds more than it can.
template <class Cache>
[[nodiscard]] Status load_windows(const BlobView& blob, const Backbone& model, uint8_t* arena,
                                  size_t arena_len, Cache& cache, LoadSummary* summary) {
  Status s = check_windows(blob, model);
  if (s == Status::Ok) s = cache.configure(model.embedding_len, blob.n_classes, model.out_scale, model.out_zp);
  if (s != Status::Ok) return s;
  LoadSummary sum;
  s = embed_windows(blob, model, arena, arena_len,
                    [&](uint32_t, const int8_t* e, size_t len, uint8_t label) {
                      sum.samples++;
                      sum.embedding_crc = crc32(reinterpret_cast<const uint8_t*>(e), len, sum.embedding_crc);
                      return cache.add(e, label);
                    });
  if (summary != nullptr) *summary = sum;
  return s;
}

}  // namespace tinyfl
