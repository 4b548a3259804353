// The node's data blob (docs/WIRE.md, "Data blob"): labelled int8 samples with their quantization,
// as an emulated node holds its sensor history (in memory on QEMU, a file on native).
//
// parse_blob() checks everything once (header, sizes, CRC, labels, padding); afterwards the view
// reads samples without further checks. The view points into the caller's bytes, which must
// outlive it.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "tinyfl/status.h"

namespace tinyfl {

constexpr size_t kBlobHeaderSize = 32;
constexpr uint8_t kBlobVersion = 1;

enum class BlobKind : uint8_t {
  Features = 1,    // int8 feature vectors, already embeddings
  RawWindows = 2,  // int8 raw sensor windows, need a backbone
};

struct BlobView {
  uint8_t kind;  // a BlobKind value
  uint32_t n_samples;
  uint16_t dim;        // values per sample
  uint16_t n_classes;  // every label is < n_classes
  float scale;         // value = (q - zero_point) * scale; finite, > 0
  int32_t zero_point;  // in [-128, 127]
  uint8_t model_hash[8];
  const uint8_t* labels;  // n_samples labels
  const int8_t* samples;  // n_samples * dim values, row-major
  size_t size_bytes;      // bytes the blob occupies, CRC included

  uint8_t label(uint32_t i) const { return labels[i]; }
  const int8_t* sample(uint32_t i) const { return samples + static_cast<size_t>(i) * dim; }
  float value(int8_t q) const { return static_cast<float>(static_cast<int32_t>(q) - zero_point) * scale; }
  void copy_model_hash(uint8_t out[8]) const;
};

// Parses the blob at the start of buf[0, cap). Bytes after the blob are ignored, so a board can pass
// the size of the memory region the blob was loaded into. Checks, in order: header present, magic,
// version, kind, reserved, total size (Truncated when cap is short), CRC, then dim >= 1,
// n_classes >= 1, scale, zero_point, labels and padding.
[[nodiscard]] Status parse_blob(const uint8_t* buf, size_t cap, BlobView* out);

// Copies the samples of a feature blob (kind 1) into a cache: Cache::configure(dim, n_classes,
// scale, zero_point) then Cache::add(values, label) per sample, oldest first (e.g. EmbeddingCache,
// which keeps the newest when the blob holds more than it can). Raw windows (kind 2) need a backbone:
// Status::Unsupported.
template <class Cache>
[[nodiscard]] Status load_samples(const BlobView& blob, Cache& cache) {
  if (blob.kind != static_cast<uint8_t>(BlobKind::Features)) return Status::Unsupported;
  Status s = cache.configure(blob.dim, blob.n_classes, blob.scale, blob.zero_point);
  for (uint32_t i = 0; s == Status::Ok && i < blob.n_samples; ++i) s = cache.add(blob.sample(i), blob.label(i));
  return s;
}

}  // namespace tinyfl
