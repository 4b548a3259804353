#include "tinyfl/samples.h"

namespace tinyfl {

Status check_windows(const BlobView& blob, const Backbone& model) {
  if (blob.kind != static_cast<uint8_t>(BlobKind::RawWindows)) return Status::WrongShape;
  if (blob.dim != model.input_len()) return Status::WrongShape;
  if (blob.zero_point != model.in_zp || blob.scale != model.in_scale) return Status::WrongModel;
  if (model.embedding_len == 0 || model.embedding_len > kMaxDim) return Status::TooLarge;
  return Status::Ok;
}

}  // namespace tinyfl
