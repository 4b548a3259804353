#include "tinyfl/blob.h"

#include <math.h>
#include <string.h>

#include "tinyfl/crc32.h"
#include "tinyfl/cursor.h"

namespace tinyfl {

void BlobView::copy_model_hash(uint8_t out[8]) const { memcpy(out, model_hash, sizeof model_hash); }

Status parse_blob(const uint8_t* buf, size_t cap, BlobView* out) {
  if (buf == nullptr || cap < kBlobHeaderSize) return Status::Truncated;
  if (memcmp(buf, "TFDB", 4) != 0) return Status::BadMagic;
  if (buf[4] != kBlobVersion) return Status::BadVersion;
  if (buf[5] != static_cast<uint8_t>(BlobKind::Features) && buf[5] != static_cast<uint8_t>(BlobKind::RawWindows))
    return Status::BadValue;
  if (buf[6] != 0 || buf[7] != 0) return Status::BadValue;
  Reader r(buf + 8, kBlobHeaderSize - 8);
  BlobView b;
  b.kind = buf[5];
  b.n_samples = r.u32();
  b.dim = r.u16();
  b.n_classes = r.u16();
  b.scale = r.f32();
  b.zero_point = static_cast<int32_t>(r.u32());
  memcpy(b.model_hash, r.bytes(8), sizeof b.model_hash);

  const uint64_t n = b.n_samples;
  const uint64_t pad = (4u - n % 4u) % 4u;
  const uint64_t total = kBlobHeaderSize + n + pad + n * b.dim + 4u;
  if (total > cap) return Status::Truncated;
  const size_t covered = static_cast<size_t>(total) - 4u;
  Reader c(buf + covered, 4);
  if (c.u32() != crc32(buf, covered)) return Status::BadCrc;

  if (b.dim == 0 || b.n_classes == 0) return Status::BadValue;
  if (!isfinite(b.scale)) return Status::NonFinite;
  if (!(b.scale > 0.0f) || b.zero_point < -128 || b.zero_point > 127) return Status::BadValue;
  b.labels = buf + kBlobHeaderSize;
  for (uint32_t i = 0; i < b.n_samples; ++i)
    if (b.labels[i] >= b.n_classes) return Status::BadValue;
  for (uint64_t i = 0; i < pad; ++i)
    if (b.labels[n + i] != 0) return Status::BadValue;
  b.samples = reinterpret_cast<const int8_t*>(b.labels + n + pad);
  b.size_bytes = static_cast<size_t>(total);
  *out = b;
  return Status::Ok;
}

}  // namespace tinyfl
