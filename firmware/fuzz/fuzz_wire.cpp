// libFuzzer target for the wire codec (the LABEL decoder and schedule of tinyfl/label.h too), the
// data blob parser and the node config record parser (docs/WIRE.md).
//
// Every input is decoded as a frame and parsed as a data blob, both as it is and with its CRC or
// tag (under a fixed fuzzing key) and blob length made consistent, so mutations reach the body
// decoders instead of the CRC or tag check. A frame that decodes is re-encoded from its fields
// (tagged under the same key) and must give the same bytes (and the size-only pass the same size);
// every value of a decoded tensor and every sample of a parsed blob is read, so ASan catches any
// view that points outside the input. The node never encodes a LABEL: one that decodes is written
// back by hand from its fields (the spec's layout) and must give the same body, and its schedule
// must give each interval's label at the interval's first and last millisecond.
//
// Build and run (from the repository root; tools/fuzz.sh does the same for every target):
//   clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -Ifirmware/lib/tinyfl/include \
//     firmware/fuzz/fuzz_wire.cpp firmware/lib/tinyfl/src/wire.cpp firmware/lib/tinyfl/src/crc32.cpp \
//     firmware/lib/tinyfl/src/blob.cpp firmware/lib/tinyfl/src/status.cpp ... -o /tmp/fuzz_wire
//   (tools/fuzz.sh has the full list of sources)
//   mkdir -p /tmp/fuzz_wire_corpus && cp testvectors/frames/*.bin /tmp/fuzz_wire_corpus/
//   /tmp/fuzz_wire -max_total_time=60 /tmp/fuzz_wire_corpus
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tinyfl/blob.h"
#include "tinyfl/cache.h"
#include "tinyfl/crc32.h"
#include "tinyfl/cursor.h"
#include "tinyfl/label.h"
#include "tinyfl/models.h"
#include "tinyfl/node_config.h"
#include "tinyfl/wire.h"

using namespace tinyfl;

namespace {

constexpr size_t kMaxValues = 1u << 16;
constexpr size_t kMaxOut = 1u << 20;

uint8_t out_buf[kMaxOut];
uint8_t fixed[kMaxOut];
float scales[65536];
int8_t codes[kMaxValues];
float values[kMaxValues];
IdRef ids[65536];
uint32_t masked_values[kMaxValues];
uint8_t seeds[65536][kRoundSeedLen];
const uint8_t kFuzzKey[kFrameKeyLen] = {0x66, 0x75, 0x7a, 0x7a};
const char kFuzzTopic[] = "tinyfl/fuzz/nodes/n/update";
const FrameAuth kAuth{kFuzzKey, kFuzzTopic, sizeof kFuzzTopic - 1};
volatile float sink;

void require(bool ok) {
  if (!ok) abort();
}

// Reads every value (for ASan) and copies the tensor into encoder inputs.
bool copy_tensor(const TensorView& v, TensorFields* f) {
  require(v.data_bytes() == ((v.bits == 32) ? v.size() * 4 : (v.size() * v.bits + 7) / 8));
  if (v.size() > kMaxValues) return false;
  *f = TensorFields{};
  f->bits = v.bits;
  f->scale_mode = v.scale_mode;
  f->rows = v.rows;
  f->cols = v.cols;
  for (uint16_t j = 0; j < v.n_scales(); ++j) scales[j] = v.scale(j);
  const int qmax = v.bits == 32 ? 0 : (1 << (v.bits - 1)) - 1;
  for (size_t i = 0; i < v.size(); ++i) {
    codes[i] = v.code(i);
    require(codes[i] >= -qmax && codes[i] <= qmax);
    values[i] = v.value(i);
    sink = values[i];
  }
  f->scales = scales;
  if (v.bits == 32) f->values = values;
  else f->codes = codes;
  return true;
}

// A decoded LABEL: its body written back from the fields, then its schedule at every interval.
void check_label(const uint8_t* body, size_t body_len, const LabelView& v) {
  require(v.seq != 0 && v.n <= kMaxLabelIntervals);
  Writer w(out_buf, sizeof out_buf);
  w.u32(v.round_id);
  w.u32(static_cast<uint32_t>(v.seq));
  w.u32(static_cast<uint32_t>(v.seq >> 32));
  w.u8(v.n);
  for (uint8_t i = 0; i < v.n; ++i) {
    w.u32(v.intervals[i].start_ms);
    w.u32(v.intervals[i].duration_ms);
    w.u16(static_cast<uint16_t>(v.intervals[i].label));
  }
  require(w.ok() && w.size() == body_len && memcmp(out_buf, body, body_len) == 0);
  LabelSchedule schedule;
  const uint32_t t0 = v.round_id;  // any receipt time: differences wrap
  schedule.set(v, t0);
  for (uint8_t i = 0; i < v.n; ++i) {
    const LabelInterval& iv = v.intervals[i];
    require(iv.duration_ms >= 1 && iv.label >= kNoLabel);
    require(i == 0 || iv.start_ms >= v.intervals[i - 1].start_ms + v.intervals[i - 1].duration_ms);
    require(schedule.label_at(t0 + iv.start_ms) == iv.label);
    require(schedule.label_at(t0 + iv.start_ms + iv.duration_ms - 1u) == iv.label);
  }
  require(schedule.ended(t0 + (v.n == 0 ? 0u : v.intervals[v.n - 1].start_ms + v.intervals[v.n - 1].duration_ms)));
}

void check_same(Status s, size_t len, size_t size_only, const uint8_t* data, size_t size) {
  require(s == Status::Ok);
  require(len == size && size_only == size);
  require(memcmp(out_buf, data, size) == 0);
}

void fuzz_frame(const uint8_t* data, size_t size) {
  FrameHeader hdr;
  const uint8_t* body = nullptr;
  if (decode_frame(data, size, &hdr, &body) != Status::Ok) return;
  require(size == kFrameHeaderSize + hdr.body_len + (hdr.auth == kAuthTag ? kTagLen : kCrcLen));
  const FrameAuth* auth = hdr.auth == kAuthTag ? &kAuth : nullptr;
  if (verify_frame(data, hdr, auth) != Status::Ok) return;
  // The typed entry points agree with the pieces.
  HelloView hv;
  GlobalView gv;
  UpdateView uv;
  UnmaskView mv;
  RevealView rv;
  LabelView lv;
  const bool masked = (hdr.flags & kFlagMasked) != 0;
  const bool typed_ok = hdr.type == 1   ? decode_hello_frame(data, size, auth, &hv) == Status::Ok
                        : hdr.type == 2 ? decode_global_frame(data, size, auth, &gv) == Status::Ok
                        : hdr.type == 3 ? decode_update_frame(data, size, auth, &uv) == Status::Ok
                        : hdr.type == 4 ? decode_unmask_frame(data, size, auth, &mv) == Status::Ok
                        : hdr.type == 5 ? decode_reveal_frame(data, size, auth, &rv) == Status::Ok
                                        : decode_label_frame(data, size, auth, &lv) == Status::Ok;
  if (size > kMaxOut) return;
  size_t len = 0;
  switch (static_cast<FrameType>(hdr.type)) {
    case FrameType::Hello: {
      HelloView v;
      require((decode_hello(body, hdr.body_len, &v) == Status::Ok) == typed_ok);
      if (!typed_ok) return;
      HelloFields f{};
      f.node_id = v.node_id;
      f.node_id_len = v.node_id_len;
      f.fw_version = v.fw_version;
      memcpy(f.model_hash, v.model_hash, sizeof f.model_hash);
      f.n_samples = v.n_samples;
      f.free_ram = v.free_ram;
      f.max_payload = v.max_payload;
      f.embed_dim = v.embed_dim;
      f.n_classes = v.n_classes;
      f.uplink_bits = v.uplink_bits;
      f.board = v.board;
      f.auth = auth;
      check_same(encode_hello(f, out_buf, sizeof out_buf, &len), len, encoded_size_hello(f), data, size);
      break;
    }
    case FrameType::Global: {
      GlobalView v;
      require((decode_global(body, hdr.body_len, &v, masked) == Status::Ok) == typed_ok);
      if (!typed_ok) return;
      GlobalFields f{};
      f.round_id = v.round_id;
      memcpy(f.model_hash, v.model_hash, sizeof f.model_hash);
      f.embed_dim = v.embed_dim;
      f.n_classes = v.n_classes;
      f.epochs = v.epochs;
      f.batch_size = v.batch_size;
      f.lr = v.lr;
      f.prox_mu = v.prox_mu;
      f.clip_norm = v.clip_norm;
      f.uplink_bits = v.uplink_bits;
      f.uplink_scale_mode = v.uplink_scale_mode;
      f.seed = v.seed;
      f.n_selected = v.n_selected;
      for (uint16_t i = 0; i < v.n_selected; ++i) {
        ids[i] = v.selected_id(i);
        require(valid_node_id(ids[i].id, ids[i].len) && v.selects(ids[i].id, ids[i].len));
      }
      f.selected = ids;
      if (!copy_tensor(v.head, &f.head)) return;
      f.masked = v.masked;
      f.mask_bits = v.mask_bits;
      f.threshold = v.threshold;
      f.secagg_scale = v.secagg_scale;
      f.noise_var = v.noise_var;
      f.auth = auth;
      check_same(encode_global(f, out_buf, sizeof out_buf, &len), len, encoded_size_global(f), data, size);
      break;
    }
    case FrameType::Update: {
      UpdateView v;
      require((decode_update(body, hdr.body_len, &v, masked) == Status::Ok) == typed_ok);
      if (!typed_ok) return;
      UpdateFields f{};
      f.round_id = v.round_id;
      f.n_samples = v.n_samples;
      f.loss = v.loss;
      f.accuracy = v.accuracy;
      f.update_norm = v.update_norm;
      f.masked = v.masked;
      if (v.masked) {
        const MaskedView& m = v.masked_delta;
        if (m.size() > kMaxValues) return;
        for (size_t i = 0; i < m.size(); ++i) {
          masked_values[i] = m.value(i);
          require(m.bits == 32 || masked_values[i] < (1u << m.bits));
        }
        f.masked_delta = MaskedFields{m.bits, m.rows, m.cols, masked_values};
      } else if (!copy_tensor(v.delta, &f.delta)) {
        return;
      }
      f.auth = auth;
      check_same(encode_update(f, out_buf, sizeof out_buf, &len), len, encoded_size_update(f), data, size);
      break;
    }
    case FrameType::Unmask: {
      UnmaskView v;
      require((decode_unmask(body, hdr.body_len, &v) == Status::Ok) == typed_ok);
      if (!typed_ok) return;
      for (uint16_t i = 0; i < v.n_dropped; ++i) {
        ids[i] = v.dropped_id(i);
        require(valid_node_id(ids[i].id, ids[i].len));
      }
      const UnmaskFields f{v.round_id, v.n_survivors, v.n_dropped, ids, auth};
      size_t size_only = 0;
      (void)encode_unmask(f, nullptr, 0, &size_only);
      check_same(encode_unmask(f, out_buf, sizeof out_buf, &len), len, size_only, data, size);
      break;
    }
    case FrameType::Reveal: {
      RevealView v;
      require((decode_reveal(body, hdr.body_len, &v) == Status::Ok) == typed_ok);
      if (!typed_ok) return;
      for (uint16_t i = 0; i < v.n; ++i) {
        ids[i] = v.peer(i);
        require(valid_node_id(ids[i].id, ids[i].len));
        memcpy(seeds[i], v.seed(i), kRoundSeedLen);
      }
      const RevealFields f{v.round_id, v.n, ids, seeds, auth};
      check_same(encode_reveal(f, out_buf, sizeof out_buf, &len), len, encoded_size_reveal(f), data, size);
      break;
    }
    case FrameType::Label: {
      LabelView v;
      require((decode_label(body, hdr.body_len, &v) == Status::Ok) == typed_ok);
      if (typed_ok) check_label(body, hdr.body_len, v);
      break;
    }
  }
}

CacheStorage<16, kMaxDim> cache_storage;
EmbeddingCache cache(cache_storage);
BackboneWork backbone_work;

void fuzz_blob(const uint8_t* data, size_t size) {
  BlobView b;
  if (parse_blob(data, size, &b) != Status::Ok) return;
  require(b.size_bytes <= size && b.dim > 0 && b.n_classes > 0);
  for (uint32_t i = 0; i < b.n_samples; ++i) {
    require(b.label(i) < b.n_classes);
    const int8_t* x = b.sample(i);
    for (uint16_t j = 0; j < b.dim; ++j) sink = b.value(x[j]);
  }
  // What a node does with it at boot: copy features, or embed raw windows with the compiled
  // backbone the blob names (the compiled models are the repo's, models/<task>/backbone.h).
  BlobLoad load;
  const Status s = load_blob_samples(b, cache, backbone_work, &load);
  if (s != Status::Ok) return;
  const uint32_t kept = b.n_samples < cache.capacity() ? b.n_samples : cache.capacity();
  require(cache.size() == kept);
  if (b.kind == static_cast<uint8_t>(BlobKind::RawWindows)) {
    require(load.model != nullptr && load.summary.samples == b.n_samples);
    require(cache.dim() == backbone_work.model.embedding_len);
  }
}


void store_u32(uint8_t* p, uint32_t v) {
  for (int k = 0; k < 4; ++k) p[k] = static_cast<uint8_t>(v >> (8 * k));
}

}  // namespace

// A config record that parses has NUL-terminated fields within their arrays; strlen reads them
// all, so ASan catches a field left unterminated. Also parsed with its CRC made consistent.
void fuzz_config(const uint8_t* data, size_t size) {
  static uint8_t copy[1024];
  NodeConfigRecord rec;
  for (int pass = 0; pass < 2; ++pass) {
    const uint8_t* bytes = data;
    if (pass == 1) {
      if (size < 12 || size > sizeof copy) return;
      memcpy(copy, data, size);
      store_u32(copy + size - 4, crc32(copy, size - 4));
      bytes = copy;
    }
    if (parse_node_config(bytes, size, &rec) == Status::Ok) {
      const size_t total = strlen(rec.node_id) + strlen(rec.topic_prefix) + strlen(rec.username) +
                           strlen(rec.password);
      for (size_t i = 0; rec.has_keys && i < sizeof rec.frame_key; ++i) sink = rec.frame_key[i] + rec.fleet_key[i];
      if (total == 0 || rec.node_id[0] == 0) abort();  // an accepted record has an id
    }
  }
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz_frame(data, size);
  fuzz_blob(data, size);
  fuzz_config(data, size);
  if (size < kFrameHeaderSize + kTagLen || size > sizeof fixed) return 0;
  // The same bytes with the trailer fixed up (a tag under the fuzzing key, or the CRC), as a frame.
  memcpy(fixed, data, size);
  if (fixed[5] == kAuthTag) frame_tag(kAuth, fixed, size - kTagLen, fixed + size - kTagLen);
  else store_u32(fixed + size - 4, crc32(fixed, size - 4));
  fuzz_frame(fixed, size);
  // ... and as a blob: the CRC sits right after the samples the header announces.
  if (size >= kBlobHeaderSize) {
    memcpy(fixed, data, size);
    const uint64_t n = static_cast<uint64_t>(fixed[8]) | (static_cast<uint64_t>(fixed[9]) << 8) |
                       (static_cast<uint64_t>(fixed[10]) << 16) | (static_cast<uint64_t>(fixed[11]) << 24);
    const uint64_t dim = static_cast<uint64_t>(fixed[12]) | (static_cast<uint64_t>(fixed[13]) << 8);
    const uint64_t total = kBlobHeaderSize + n + (4 - n % 4) % 4 + n * dim + 4;
    if (total <= size) {
      store_u32(fixed + total - 4, crc32(fixed, static_cast<size_t>(total) - 4));
      fuzz_blob(fixed, size);
    }
  }
  return 0;
}
