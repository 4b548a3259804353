#include "tinyfl/cache.h"

#include <math.h>
#include <string.h>

namespace tinyfl {

Status EmbeddingCache::configure(uint16_t dim, uint16_t n_classes, float scale, int32_t zero_point) {
  if (dim == 0 || dim > max_dim_ || n_classes < 2 || n_classes > kMaxClasses) return Status::TooLarge;
  if (!isfinite(scale) || scale <= 0.0f || zero_point < -128 || zero_point > 127) return Status::BadValue;
  dim_ = dim;
  n_classes_ = n_classes;
  scale_ = scale;
  zero_point_ = zero_point;
  clear();
  return Status::Ok;
}

Status EmbeddingCache::add(const int8_t* values, uint8_t label) {
  if (dim_ == 0) return Status::NoData;
  if (label >= n_classes_) return Status::BadValue;
  memcpy(&values_[next_ * dim_], values, dim_);  // dim_ <= max_dim_: within the storage
  labels_[next_] = label;
  next_ = (next_ + 1) % capacity_;
  if (count_ < capacity_) ++count_;
  return Status::Ok;
}

void EmbeddingCache::embedding(uint32_t i, float* x) const {
  const int8_t* q = &values_[slot(i) * dim_];
  for (uint16_t j = 0; j < dim_; ++j) x[j] = static_cast<float>(q[j] - zero_point_) * scale_;
}

}  // namespace tinyfl
