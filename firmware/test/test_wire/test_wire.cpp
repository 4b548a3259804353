// The wire codec against the golden vectors (testvectors/, written by tools/gen_testvectors.py):
// every valid frame decodes to the fields the Python side wrote, re-encodes to the same bytes, and
// every invalid one is rejected with exactly the status its .reason file names. Tagged frames are
// checked under the test key of their .auth.txt, and a changed topic, key or byte fails the tag.
#include "../check.h"
#include "../golden.h"
#include "tinyfl/crc32.h"
#include "tinyfl/half.h"
#include "tinyfl/wire.h"

using namespace tinyfl;
using namespace golden;

namespace {
constexpr size_t kMaxValues = 8192;

void tensor_text(Text& t, const char* name, const TensorView& v) {
  t.add("%s.bits=%u\n%s.scale_mode=%u\n%s.rows=%u\n%s.cols=%u\n%s.scales=", name, v.bits, name, v.scale_mode, name,
        v.rows, name, v.cols, name);
  for (uint16_t j = 0; j < v.n_scales(); ++j) {
    if (j) t.add(",");
    t.f32(v.scale(j));
  }
  t.add("\n%s.codes=", name);
  for (size_t i = 0; v.bits != 32 && i < v.size(); ++i) t.add(i ? ",%d" : "%d", v.code(i));
  t.add("\n%s.values=", name);
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) t.add(",");
    t.f32(v.value(i));
  }
  t.add("\n");
}

void hello_text(Text& t, const HelloView& v) {
  t.add("type=hello\nnode_id=%.*s\nfw_version=%u\nmodel_hash=", v.node_id_len, v.node_id, v.fw_version);
  t.hex(v.model_hash, sizeof v.model_hash);
  t.add("\nn_samples=%u\nfree_ram=%u\nmax_payload=%u\nembed_dim=%u\nn_classes=%u\nuplink_bits=%u\nboard=%u\n",
        v.n_samples, v.free_ram, v.max_payload, v.embed_dim, v.n_classes, v.uplink_bits, v.board);
}

void global_text(Text& t, const GlobalView& v) {
  t.add("type=global\nround_id=%u\nmodel_hash=", v.round_id);
  t.hex(v.model_hash, sizeof v.model_hash);
  t.add("\nembed_dim=%u\nn_classes=%u\nepochs=%u\nbatch_size=%u\nlr=", v.embed_dim, v.n_classes, v.epochs,
        v.batch_size);
  t.f32(v.lr);
  t.add("\nprox_mu=");
  t.f32(v.prox_mu);
  t.add("\nclip_norm=");
  t.f32(v.clip_norm);
  t.add("\nuplink_bits=%u\nuplink_scale_mode=%u\nseed=%u\nn_selected=%u\nselected=", v.uplink_bits,
        v.uplink_scale_mode, v.seed, v.n_selected);
  for (uint16_t i = 0; i < v.n_selected; ++i) {
    const IdRef id = v.selected_id(i);
    t.add(i ? ",%.*s" : "%.*s", id.len, id.id);
  }
  t.add("\n");
  tensor_text(t, "head", v.head);
  if (v.masked) {
    t.add("secagg.mask_bits=%u\nsecagg.threshold=%u\nsecagg.scale=", v.mask_bits, v.threshold);
    t.f32(v.secagg_scale);
    t.add("\nsecagg.noise_var=%lu\n", static_cast<unsigned long>(v.noise_var));
  }
}

void unmask_text(Text& t, const UnmaskView& v) {
  t.add("type=unmask\nround_id=%u\nn_survivors=%u\nn_dropped=%u\ndropped=", v.round_id, v.n_survivors,
        v.n_dropped);
  for (uint16_t i = 0; i < v.n_dropped; ++i) {
    const IdRef id = v.dropped_id(i);
    t.add(i ? ",%.*s" : "%.*s", id.len, id.id);
  }
  t.add("\n");
}

void reveal_text(Text& t, const RevealView& v) {
  t.add("type=reveal\nround_id=%u\nn=%u\npeers=", v.round_id, v.n);
  for (uint16_t i = 0; i < v.n; ++i) {
    const IdRef id = v.peer(i);
    t.add(i ? ",%.*s" : "%.*s", id.len, id.id);
  }
  t.add("\nseeds=");
  for (uint16_t i = 0; i < v.n; ++i) {
    if (i) t.add(",");
    t.hex(v.seed(i), kRoundSeedLen);
  }
  t.add("\n");
}

void update_text(Text& t, const UpdateView& v) {
  t.add("type=update\nround_id=%u\nn_samples=%u\nloss=", v.round_id, v.n_samples);
  t.f32(v.loss);
  t.add("\naccuracy=");
  t.f32(v.accuracy);
  t.add("\nupdate_norm=");
  t.f32(v.update_norm);
  t.add("\n");
  if (!v.masked) {
    tensor_text(t, "delta", v.delta);
    return;
  }
  const MaskedView& m = v.masked_delta;
  t.add("delta.masked_bits=%u\ndelta.rows=%u\ndelta.cols=%u\ndelta.masked=", m.bits, m.rows, m.cols);
  for (size_t i = 0; i < m.size(); ++i) t.add(i ? ",%u" : "%u", m.value(i));
  t.add("\n");
}

// ---- decode any frame, re-encode it ---------------------------------------------------------

struct Decoded {
  FrameHeader hdr;
  HelloView hello;
  GlobalView global;
  UpdateView update;
  UnmaskView unmask;
  RevealView reveal;
};

// What a receiver holding `auth` (null: no keys) does with any frame.
Status decode_any(const uint8_t* buf, size_t len, const FrameAuth* auth, Decoded* d) {
  const uint8_t* body = nullptr;
  Status s = decode_frame(buf, len, &d->hdr, &body);
  if (s != Status::Ok) return s;
  s = verify_frame(buf, d->hdr, auth);
  if (s != Status::Ok) return s;
  const bool masked = (d->hdr.flags & kFlagMasked) != 0;
  switch (static_cast<FrameType>(d->hdr.type)) {
    case FrameType::Hello: return decode_hello(body, d->hdr.body_len, &d->hello);
    case FrameType::Global: return decode_global(body, d->hdr.body_len, &d->global, masked);
    case FrameType::Update: return decode_update(body, d->hdr.body_len, &d->update, masked);
    case FrameType::Unmask: return decode_unmask(body, d->hdr.body_len, &d->unmask);
    case FrameType::Reveal: return decode_reveal(body, d->hdr.body_len, &d->reveal);
    case FrameType::Label: break;  // testvectors/labels/, test_label: the node only decodes LABEL
  }
  return Status::BadType;
}

struct TensorCopy {
  float scales[65535 / 8];
  int8_t codes[kMaxValues];
  float values[kMaxValues];
};

bool to_fields(const TensorView& v, TensorCopy* c, TensorFields* f) {
  if (v.size() > kMaxValues || v.n_scales() > sizeof c->scales / sizeof c->scales[0]) return false;
  *f = TensorFields{};
  f->bits = v.bits;
  f->scale_mode = v.scale_mode;
  f->rows = v.rows;
  f->cols = v.cols;
  for (uint16_t j = 0; j < v.n_scales(); ++j) c->scales[j] = v.scale(j);
  for (size_t i = 0; i < v.size(); ++i) {
    c->codes[i] = v.code(i);
    c->values[i] = v.value(i);
  }
  f->scales = c->scales;
  if (v.bits == 32) f->values = c->values;
  else f->codes = c->codes;
  return true;
}

// Re-encodes a decoded frame into out[0, cap) (signed under `auth`, or with a CRC when null); also
// returns the size-only pass's answer.
Status reencode(const Decoded& d, const FrameAuth* auth, uint8_t* out, size_t cap, size_t* len,
                size_t* size_only) {
  static TensorCopy tc;
  static IdRef ids[64];
  static uint32_t masked[kMaxValues];
  static uint8_t seeds[64][kRoundSeedLen];
  switch (static_cast<FrameType>(d.hdr.type)) {
    case FrameType::Hello: {
      const HelloView& v = d.hello;
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
      *size_only = encoded_size_hello(f);
      return encode_hello(f, out, cap, len);
    }
    case FrameType::Global: {
      const GlobalView& v = d.global;
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
      if (v.n_selected > 64) return Status::TooLarge;
      for (uint16_t i = 0; i < v.n_selected; ++i) ids[i] = v.selected_id(i);
      f.n_selected = v.n_selected;
      f.selected = ids;
      if (!to_fields(v.head, &tc, &f.head)) return Status::TooLarge;
      f.masked = v.masked;
      f.mask_bits = v.mask_bits;
      f.threshold = v.threshold;
      f.secagg_scale = v.secagg_scale;
      f.noise_var = v.noise_var;
      f.auth = auth;
      *size_only = encoded_size_global(f);
      return encode_global(f, out, cap, len);
    }
    case FrameType::Update: {
      const UpdateView& v = d.update;
      UpdateFields f{};
      f.round_id = v.round_id;
      f.n_samples = v.n_samples;
      f.loss = v.loss;
      f.accuracy = v.accuracy;
      f.update_norm = v.update_norm;
      f.masked = v.masked;
      if (v.masked) {
        const MaskedView& m = v.masked_delta;
        if (m.size() > kMaxValues) return Status::TooLarge;
        for (size_t i = 0; i < m.size(); ++i) masked[i] = m.value(i);
        f.masked_delta = MaskedFields{m.bits, m.rows, m.cols, masked};
      } else if (!to_fields(v.delta, &tc, &f.delta)) {
        return Status::TooLarge;
      }
      f.auth = auth;
      *size_only = encoded_size_update(f);
      return encode_update(f, out, cap, len);
    }
    case FrameType::Unmask: {
      const UnmaskView& v = d.unmask;
      if (v.n_dropped > 64) return Status::TooLarge;
      for (uint16_t i = 0; i < v.n_dropped; ++i) ids[i] = v.dropped_id(i);
      const UnmaskFields f{v.round_id, v.n_survivors, v.n_dropped, ids, auth};
      (void)encode_unmask(f, nullptr, 0, size_only);
      return encode_unmask(f, out, cap, len);
    }
    case FrameType::Reveal: {
      const RevealView& v = d.reveal;
      if (v.n > 64) return Status::TooLarge;
      for (uint16_t i = 0; i < v.n; ++i) {
        ids[i] = v.peer(i);
        memcpy(seeds[i], v.seed(i), kRoundSeedLen);
      }
      const RevealFields f{v.round_id, v.n, ids, seeds, auth};
      *size_only = encoded_size_reveal(f);
      return encode_reveal(f, out, cap, len);
    }
    case FrameType::Label: break;  // decoded only (decode_any never returns one)
  }
  return Status::BadType;
}

const uint8_t kOtherKey[kFrameKeyLen] = {1};
const FrameAuth kOtherAuth{kOtherKey, "tinyfl/other", 12};

uint8_t g_frame[kMaxFile];
uint8_t g_out[kMaxFile];
uint8_t g_expect[kMaxFile];
Text g_text;

}  // namespace

// ---- tests ----------------------------------------------------------------------------------

TINYFL_TEST(crc32_matches_zlib) {
  const uint8_t check[] = {'1', '2', '3', '4', '5', '6', '7', '8', '9'};
  CHECK_EQ(crc32(check, sizeof check), 0xCBF43926u);
  CHECK_EQ(crc32(nullptr, 0), 0u);
  CHECK_EQ(crc32(check + 4, 5, crc32(check, 4)), 0xCBF43926u);
}

TINYFL_TEST(golden_frames_decode_reencode) {
  int tagged = 0;
  const int files = for_each_golden("frames", g_frame, sizeof g_frame, [&](const char* name, const char* stem, size_t n,
                                                                          const FrameAuth* auth) {
    tagged += auth != nullptr;
    Decoded d{};
    // a receiver with the other kind of authentication refuses it
    CHECK(decode_any(g_frame, n, auth == nullptr ? &kOtherAuth : nullptr, &d) ==
          (auth == nullptr ? Status::Unauthenticated : Status::NoKey));
    const Status s = decode_any(g_frame, n, auth, &d);
    if (s != Status::Ok) printf("%s: %s\n", name, status_name(s));
    CHECK(s == Status::Ok);
    if (s != Status::Ok) return;
    g_text.len = 0;
    if (d.hdr.type == 1) hello_text(g_text, d.hello);
    if (d.hdr.type == 2) global_text(g_text, d.global);
    if (d.hdr.type == 3) update_text(g_text, d.update);
    if (d.hdr.type == 4) unmask_text(g_text, d.unmask);
    if (d.hdr.type == 5) reveal_text(g_text, d.reveal);
    const long fn = load("frames", stem, ".fields.txt", g_expect, sizeof g_expect);
    check_text(name, g_text, g_expect, fn);

    size_t len = 0, size_only = 0;
    CHECK(reencode(d, auth, g_out, sizeof g_out, &len, &size_only) == Status::Ok);
    CHECK_EQ(len, n);
    CHECK_EQ(size_only, n);
    CHECK(memcmp(g_out, g_frame, n) == 0);
    // exactly enough room works, one byte less does not
    CHECK(reencode(d, auth, g_out, n, &len, &size_only) == Status::Ok);
    CHECK(reencode(d, auth, g_out, n - 1, &len, &size_only) == Status::BufferFull);
    // signing replaces the 4-byte CRC by the 16-byte tag
    CHECK(reencode(d, auth == nullptr ? &kOtherAuth : nullptr, g_out, sizeof g_out, &len, &size_only) == Status::Ok);
    CHECK_EQ(len, auth == nullptr ? n + 12 : n - 12);
  });
  CHECK(files >= 12);
  CHECK(tagged >= 3);
}

TINYFL_TEST(tagged_frames_fail_under_another_topic_key_or_byte) {
  const int n = check_rejections("frames/auth_invalid", g_frame, sizeof g_frame, [](const char* stem, size_t len) {
    static AuthFile af;
    CHECK(load_auth("frames/auth_invalid", stem, &af));
    Decoded d{};
    return decode_any(g_frame, len, &af.auth, &d);
  });
  CHECK(n >= 5);
}

TINYFL_TEST(half_conversions_match_the_host) {
  static uint8_t buf[1 << 15];
  const long n = tinyfl_test::read_file(tinyfl_test::vector_path("half.bin"), buf, sizeof buf);
  CHECK(n >= 6 * 1000 && n % 6 == 0);
  int bad = 0;
  for (long i = 0; i + 6 <= n; i += 6) {
    uint32_t fbits;
    uint16_t hbits;
    memcpy(&fbits, buf + i, 4);
    memcpy(&hbits, buf + i + 4, 2);
    float f;
    memcpy(&f, &fbits, 4);
    const uint16_t got = float_to_half(f);
    if (got != hbits && bad++ < 5) printf("float 0x%08x: half 0x%04x, expected 0x%04x\n", fbits, got, hbits);
  }
  CHECK_EQ(bad, 0);
  // every finite half widens and narrows back to itself
  for (uint32_t h = 0; h < 0x10000u; ++h) {
    if (((h >> 10) & 0x1Fu) == 0x1Fu) continue;
    if (float_to_half(half_to_float(static_cast<uint16_t>(h))) != h) ++bad;
  }
  CHECK_EQ(bad, 0);
  CHECK(isinf(half_to_float(float_to_half(INFINITY))));
  CHECK(isnan(half_to_float(float_to_half(NAN))));
}

TINYFL_TEST(invalid_frames_rejected_with_their_reason) {
  const int n = check_rejections("frames/invalid", g_frame, sizeof g_frame, [](const char*, size_t len) {
    Decoded d{};
    return decode_any(g_frame, len, nullptr, &d);
  });
  CHECK(n >= 40);
}

TINYFL_TEST(every_truncation_is_rejected) {
  for_each_golden("frames", g_frame, sizeof g_frame, [](const char*, const char*, size_t len, const FrameAuth* auth) {
    for (size_t cut = 0; cut < len; ++cut) {
      // a copy of exactly `cut` bytes, so reading past it is caught under ASan or valgrind
      uint8_t* copy = static_cast<uint8_t*>(malloc(cut > 0 ? cut : 1));
      memcpy(copy, g_frame, cut);
      Decoded d{};
      // without a length field, a cut shows as a short header or trailer, or a CRC or tag mismatch
      const Status s = decode_any(copy, cut, auth, &d);
      CHECK(s == Status::Truncated || s == Status::BadCrc || s == Status::BadTag);
      free(copy);
    }
  });
}

TINYFL_TEST(every_bit_flip_is_rejected) {
  for_each_golden("frames", g_frame, sizeof g_frame, [](const char* name, const char*, size_t len,
                                                        const FrameAuth* auth) {
    for (size_t bit = 0; bit < len * 8; ++bit) {
      g_frame[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
      Decoded d{};
      const Status s = decode_any(g_frame, len, auth, &d);
      g_frame[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
      if (s == Status::Ok) printf("%s: flip of bit %zu accepted\n", name, bit);
      CHECK(s != Status::Ok);
    }
  });
}

TINYFL_TEST(packing_round_trips_every_code) {
  static int8_t codes[300];
  static const float scales[3] = {0.5f, 0.25f, 2.0f};
  static const uint8_t kBits[] = {8, 4, 2};
  for (uint8_t bits : kBits) {
    const int qmax = (1 << (bits - 1)) - 1;
    for (uint16_t cols = 1; cols <= 100; cols += 7) {  // 3*cols values: every remainder mod 4
      for (int i = 0; i < 3 * cols; ++i) codes[i] = static_cast<int8_t>((i * 5 + cols) % (2 * qmax + 1) - qmax);
      UpdateFields f{};
      f.round_id = 1;
      f.loss = 0.5f;
      f.delta = TensorFields{bits, 1, 3, cols, scales, codes, nullptr};
      size_t len = 0;
      CHECK(encode_update(f, g_out, sizeof g_out, &len) == Status::Ok);
      CHECK_EQ(len, encoded_size_update(f));
      UpdateView v{};
      CHECK(decode_update_frame(g_out, len, nullptr, &v) == Status::Ok);
      CHECK_EQ(v.delta.data_bytes(), (3u * cols * bits + 7) / 8);
      for (int i = 0; i < 3 * cols; ++i) {
        CHECK_EQ(v.delta.code(static_cast<size_t>(i)), codes[i]);
        CHECK(v.delta.value(static_cast<size_t>(i)) == static_cast<float>(codes[i]) * scales[i / cols]);
      }
    }
    // every code in range, once each, at every position within a byte
    for (int shift = 0; shift < 4; ++shift) {
      int n = 0;
      for (int k = 0; k < shift; ++k) codes[n++] = 0;
      for (int c = -qmax; c <= qmax; ++c) codes[n++] = static_cast<int8_t>(c);
      UpdateFields f{};
      f.round_id = 1;
      f.loss = 0.5f;
      f.delta = TensorFields{bits, 0, 1, static_cast<uint16_t>(n), scales, codes, nullptr};
      size_t len = 0;
      CHECK(encode_update(f, g_out, sizeof g_out, &len) == Status::Ok);
      UpdateView v{};
      CHECK(decode_update_frame(g_out, len, nullptr, &v) == Status::Ok);
      for (int i = 0; i < n; ++i) CHECK_EQ(v.delta.code(static_cast<size_t>(i)), codes[i]);
      // out-of-range codes cannot be encoded
      codes[n - 1] = static_cast<int8_t>(-qmax - 1);
      CHECK(encode_update(f, g_out, sizeof g_out, &len) == Status::BadValue);
      if (bits < 8) {
        codes[n - 1] = static_cast<int8_t>(qmax + 1);
        CHECK(encode_update(f, g_out, sizeof g_out, &len) == Status::BadValue);
      }
    }
  }
}

TINYFL_TEST(encoder_refuses_what_the_decoder_rejects) {
  const float scales[1] = {0.5f};
  const int8_t codes[6] = {1, -1, 0, 1, 0, 0};  // room for the 3x2 head below
  const IdRef ids[2] = {{"node-01", 7}, {"bad id", 6}};
  GlobalFields g{};
  g.round_id = 1;
  g.embed_dim = 1;
  g.n_classes = 2;
  g.epochs = 1;
  g.batch_size = 8;
  g.lr = 0.1f;
  g.uplink_bits = 8;
  g.head = TensorFields{8, 0, 2, 2, scales, codes, nullptr};
  size_t len = 0;
  CHECK(encode_global(g, g_out, sizeof g_out, &len) == Status::Ok);
  CHECK_EQ(len, encoded_size_global(g));
  // the size-only pass never fails
  CHECK(encode_global(g, nullptr, 0, &len) == Status::Ok);
  CHECK_EQ(len, encoded_size_global(g));

  GlobalFields bad = g;
  bad.lr = NAN;
  CHECK(encode_global(bad, g_out, sizeof g_out, &len) == Status::NonFinite);
  bad = g;
  bad.epochs = 65;
  CHECK(encode_global(bad, g_out, sizeof g_out, &len) == Status::BadValue);
  bad = g;
  bad.n_selected = 2;
  bad.selected = ids;
  CHECK(encode_global(bad, g_out, sizeof g_out, &len) == Status::BadValue);
  bad.n_selected = 1;
  CHECK(encode_global(bad, g_out, sizeof g_out, &len) == Status::Ok);
  bad = g;
  bad.head.rows = 3;  // n_classes is 2
  CHECK(encode_global(bad, g_out, sizeof g_out, &len) == Status::BadValue);
  bad = g;
  bad.head.codes = nullptr;
  CHECK(encode_global(bad, g_out, sizeof g_out, &len) == Status::BadValue);
  CHECK_EQ(encoded_size_global(bad), encoded_size_global(g));
  bad = g;
  const float odd_scale[1] = {0.1f};  // not a binary16 value: the receiver would read another
  bad.head.scales = odd_scale;
  CHECK(encode_global(bad, g_out, sizeof g_out, &len) == Status::BadValue);
  bad = g;
  const uint8_t key[kFrameKeyLen] = {7};
  FrameAuth no_topic{key, nullptr, 0};
  bad.auth = &no_topic;
  CHECK(encode_global(bad, g_out, sizeof g_out, &len) == Status::BadValue);
  FrameAuth no_key{nullptr, "t", 1};
  bad.auth = &no_key;
  CHECK(encode_global(bad, g_out, sizeof g_out, &len) == Status::BadValue);
  const FrameAuth good{key, "tinyfl/x/global", 15};
  bad.auth = &good;
  CHECK(encode_global(bad, g_out, sizeof g_out, &len) == Status::Ok);
  CHECK_EQ(len, encoded_size_global(g) + 12);
  GlobalView gv{};
  CHECK(decode_global_frame(g_out, len, &good, &gv) == Status::Ok);
  const FrameAuth other_topic{key, "tinyfl/y/global", 15};
  CHECK(decode_global_frame(g_out, len, &other_topic, &gv) == Status::BadTag);
  CHECK(decode_global_frame(g_out, len, nullptr, &gv) == Status::NoKey);

  HelloFields h{};
  h.node_id = "abc";
  h.node_id_len = 3;
  CHECK(encode_hello(h, g_out, sizeof g_out, &len) == Status::Ok);
  h.board = 9;
  CHECK(encode_hello(h, g_out, sizeof g_out, &len) == Status::BadValue);
  h.board = 0;
  h.node_id_len = 0;
  CHECK(encode_hello(h, g_out, sizeof g_out, &len) == Status::BadValue);
}

TINYFL_TEST(frame_of_another_type_is_bad_type) {
  const long n = load("frames", "hello", ".bin", g_frame, sizeof g_frame);
  CHECK(n > 0);
  GlobalView g{};
  CHECK(decode_global_frame(g_frame, static_cast<size_t>(n), nullptr, &g) == Status::BadType);
  UpdateView u{};
  CHECK(decode_update_frame(g_frame, static_cast<size_t>(n), nullptr, &u) == Status::BadType);
  HelloView h{};
  CHECK(decode_hello_frame(g_frame, static_cast<size_t>(n), nullptr, &h) == Status::Ok);
  CHECK(decode_hello_frame(nullptr, 0, nullptr, &h) == Status::Truncated);
}

TINYFL_TEST(global_selects_listed_nodes) {
  const long n = load("frames", "global_4bit_per_tensor", ".bin", g_frame, sizeof g_frame);
  GlobalView g{};
  CHECK(decode_global_frame(g_frame, static_cast<size_t>(n), nullptr, &g) == Status::Ok);
  CHECK_EQ(g.n_selected, 3);
  CHECK(g.selects("node-01", 7));
  CHECK(g.selects("Node3", 5));
  CHECK(!g.selects("node-0", 6));
  CHECK(!g.selects("node-011", 8));
  CHECK(!g.selects("node3", 5));
  const long m = load("frames", "global_8bit_per_row", ".bin", g_frame, sizeof g_frame);
  CHECK(decode_global_frame(g_frame, static_cast<size_t>(m), nullptr, &g) == Status::Ok);
  CHECK_EQ(g.n_selected, 0);
  CHECK(g.selects("anyone", 6));
}

int main() { return tinyfl_test::run_all(); }
