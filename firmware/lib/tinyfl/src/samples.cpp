#include "tinyfl/samples.h"

namespace tinyfl {

Status check_windows(const BlobView& blob, const WindowShape& shape, const Backbone& model) {
  if (blob.kind != static_cast<uint8_t>(BlobKind::RawWindows)) return Status::WrongShape;
  if (blob.dim != shape.len) return Status::WrongShape;
  if (blob.zero_point != shape.zero_point || blob.scale != shape.scale) return Status::WrongModel;
  if (model.embedding_len == 0 || model.embedding_len > kMaxDim) return Status::TooLarge;
  return Status::Ok;
}

}  // namespace tinyfl
