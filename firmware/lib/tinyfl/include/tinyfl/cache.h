// The node's labelled samples, kept as int8 embeddings in a fixed ring buffer: when it is full the
// oldest sample makes room for the newest, as a sensor node's recent history should.
#pragma once
#include <stdint.h>

#include "tinyfl/config.h"
#include "tinyfl/head.h"
#include "tinyfl/status.h"

namespace tinyfl {

// The bytes behind a cache, owned by the caller: a static of this type lands in .bss (zero-filled,
// no flash image), while the cache object itself, which has a vtable, stays small.
template <uint32_t Capacity = kCacheCapacity, uint16_t MaxDim = kMaxDim>
struct CacheStorage {
  int8_t values[Capacity * MaxDim];
  uint8_t labels[Capacity];
};

class EmbeddingCache final : public SampleSource {
 public:
  template <uint32_t Capacity, uint16_t MaxDim>
  explicit EmbeddingCache(CacheStorage<Capacity, MaxDim>& storage)
      : values_(storage.values), labels_(storage.labels), capacity_(Capacity), max_dim_(MaxDim) {
    static_assert(Capacity <= kCacheCapacity, "the trainer indexes at most kCacheCapacity samples");
  }

  // Sets the embedding layout and empties the cache. value = (q - zero_point) * scale.
  [[nodiscard]] Status configure(uint16_t dim, uint16_t n_classes, float scale, int32_t zero_point);
  // Copies one embedding of `dim` values; overwrites the oldest sample when full.
  [[nodiscard]] Status add(const int8_t* values, uint8_t label);
  // Overwrites sample i (counted from the oldest, i < size()) with another embedding: what a
  // sampling policy above the ring uses (tinyfl/sensor_stream.h's reservoir). Inline, so only
  // images that use it carry it.
  void replace(uint32_t i, const int8_t* values, uint8_t label) {
    const uint32_t s = slot(i);
    for (uint16_t j = 0; j < dim_; ++j) values_[static_cast<size_t>(s) * dim_ + j] = values[j];
    labels_[s] = label;
  }
  void clear() { count_ = next_ = 0; }

  uint32_t size() const override { return count_; }
  uint8_t label(uint32_t i) const override { return labels_[slot(i)]; }
  void embedding(uint32_t i, float* x) const override;

  uint16_t dim() const { return dim_; }
  uint16_t n_classes() const { return n_classes_; }
  uint32_t capacity() const { return capacity_; }

 private:
  // Sample i counts from the oldest one still held.
  uint32_t slot(uint32_t i) const {
    return count_ < capacity_ ? i : (next_ + i) % capacity_;
  }

  int8_t* values_;
  uint8_t* labels_;
  uint32_t capacity_;
  uint16_t max_dim_;
  uint32_t count_ = 0;
  uint32_t next_ = 0;
  uint16_t dim_ = 0;
  uint16_t n_classes_ = 0;
  float scale_ = 1.0f;
  int32_t zero_point_ = 0;
};

}  // namespace tinyfl
