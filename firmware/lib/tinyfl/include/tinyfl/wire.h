// The TinyFL wire codec (docs/WIRE.md): HELLO, GLOBAL and UPDATE frames.
//
// Decoding is zero-copy: a decoded frame is a set of views into the caller's buffer, which must
// outlive them. Every length is checked against the bytes present, every range docs/WIRE.md states
// is checked, and the first failure, in the order docs/WIRE.md gives, is the returned Status.
// The decoder does not know the node's limits (config.h): it accepts any valid frame, and the node
// checks shapes against its own head.
//
// Authentication (docs/WIRE.md, "Authentication"): a frame ends in a CRC-32 (auth 0, a fleet
// without keys) or in a 16-byte HMAC-SHA256 tag over the topic and the frame (auth 16). The
// decode_*_frame functions take the receiver's FrameAuth: with a key the frame must carry a valid
// tag (Unauthenticated, BadTag), checked before the body is decoded; without one a tagged frame is
// refused (NoKey). decode_frame alone checks the header and a CRC, never a tag.
//
// Encoding takes plain structs and writes through tinyfl::Writer. With a null buffer an encoder only
// counts bytes (the size-only pass, also as encoded_size_*()); with a buffer it writes the frame and
// then decodes what it wrote, so an encoder never emits a frame the decoder would reject: invalid
// fields give the decoder's Status (and unspecified buffer contents).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "tinyfl/status.h"

namespace tinyfl {

constexpr uint8_t kWireVersion = 2;
constexpr size_t kFrameHeaderSize = 6;  // magic, version, type, flags, auth
constexpr uint8_t kFlagMasked = 0x01;   // a secure-aggregation GLOBAL or UPDATE
constexpr uint8_t kAuthCrc = 0;         // `auth`: the frame ends in a CRC-32
constexpr uint8_t kAuthTag = 16;        // `auth`: the frame ends in a 16-byte tag
constexpr size_t kCrcLen = 4;
constexpr size_t kTagLen = 16;          // HMAC-SHA256 truncated to 128 bits (RFC 2104, section 5)
constexpr size_t kFrameKeyLen = 32;     // every frame and fleet key
constexpr size_t kMaxAuthTopic = 255;   // the tag covers u8 len(topic) | topic
constexpr size_t kModelHashLen = 8;
constexpr uint32_t kMaxNoiseVar = 1u << 24;  // a MASKED GLOBAL's noise_var: 0..2^24
constexpr uint8_t kMinMaskBits = 9;     // masked values and their sums: modulo 2^9 .. 2^32
constexpr uint8_t kMaxMaskBits = 32;
constexpr size_t kRoundSeedLen = 32;    // a pair's per-round seed, what REVEAL carries
constexpr size_t kMaxWireNodeId = 32;    // node ids are 1..32 bytes of [A-Za-z0-9_-]
constexpr uint16_t kMaxWireEpochs = 64;
constexpr uint16_t kMaxWireBatch = 1024;

// LABEL: an operator's label schedule for one node; its codec is tinyfl/label.h, outside the core.
enum class FrameType : uint8_t { Hello = 1, Global = 2, Update = 3, Unmask = 4, Reveal = 5, Label = 6 };

// HELLO's uplink_bits: the uplink widths a node can send.
constexpr uint8_t kUplink8Bit = 0x01;
constexpr uint8_t kUplink4Bit = 0x02;
constexpr uint8_t kUplink2Bit = 0x04;
constexpr uint8_t kUplinkFloat32 = 0x08;

// True when `id` (not NUL-terminated, `len` bytes) is a valid node id.
bool valid_node_id(const char* id, size_t len);

// Who signs or checks a frame: the 32-byte key and the topic the frame is published on.
struct FrameAuth {
  const uint8_t* key;  // kFrameKeyLen bytes
  const char* topic;   // topic_len bytes, not NUL-terminated
  size_t topic_len;    // 1..kMaxAuthTopic
};

// A string inside a frame or a caller's array: `len` bytes, not NUL-terminated.
struct IdRef {
  const char* id;
  uint8_t len;
};

// ---------------------------------------------------------------------------------------------
// Decoded views (zero-copy, valid only while the decoded buffer is)

struct FrameHeader {
  uint8_t version;
  uint8_t type;      // a FrameType value
  uint8_t flags;     // always 0 in a frame that decoded
  uint8_t auth;      // kAuthCrc or kAuthTag
  size_t body_len;   // the bytes between the header and the trailer
  const uint8_t* trailer;  // the CRC (checked) or the tag (checked by verify_frame)
};

// A rows x cols matrix: quantized codes with scales (bits 8/4/2) or float32 values (bits 32).
struct TensorView {
  uint8_t bits;        // 8, 4, 2 or 32
  uint8_t scale_mode;  // 0 one scale, 1 one per row (always 0 for bits 32)
  uint16_t rows;
  uint16_t cols;
  const uint8_t* scales_raw;  // n_scales() little-endian binary16, possibly unaligned
  const uint8_t* data;        // data_bytes(): packed codes, or little-endian f32 values

  size_t size() const { return static_cast<size_t>(rows) * cols; }
  uint16_t n_scales() const;  // 0 (bits 32), 1 (per tensor) or rows (per row)
  size_t data_bytes() const;
  float scale(uint16_t j) const;         // scale j < n_scales(), widened from binary16
  float scale_of_row(uint16_t r) const;  // the scale row r uses (0 for bits 32)
  int8_t code(size_t i) const;           // quantized code of value i (row-major); 0 for bits 32
  float value(size_t i) const;           // code(i) * scale_of_row(i / cols) in float32, or the f32
};

// A masked delta: rows x cols unsigned `bits`-bit values, packed LSB-first (docs/WIRE.md).
struct MaskedView {
  uint8_t bits;
  uint16_t rows;
  uint16_t cols;
  const uint8_t* data;

  size_t size() const { return static_cast<size_t>(rows) * cols; }
  uint32_t value(size_t i) const;
};

struct HelloView {
  const char* node_id;  // node_id_len bytes, not NUL-terminated
  uint8_t node_id_len;
  uint32_t fw_version;
  uint8_t model_hash[kModelHashLen];
  uint32_t n_samples;
  uint32_t free_ram;
  uint32_t max_payload;
  uint16_t embed_dim;
  uint16_t n_classes;
  uint8_t uplink_bits;  // kUplink8Bit | kUplink4Bit | kUplink2Bit | kUplinkFloat32
  uint8_t board;        // 0 native, 1 qemu_cortex_m4, 2 esp32dev, 3 nano33ble
};

struct GlobalView {
  uint32_t round_id;
  uint8_t model_hash[kModelHashLen];
  uint16_t embed_dim;
  uint16_t n_classes;
  uint16_t epochs;
  uint16_t batch_size;
  float lr;
  float prox_mu;
  float clip_norm;
  uint8_t uplink_bits;        // 8, 4, 2 or 32
  uint8_t uplink_scale_mode;  // 0 or 1
  uint32_t seed;
  uint16_t n_selected;          // 0 = every node
  const uint8_t* selected_raw;  // the n_selected encoded `str`s, selected_raw_len bytes
  size_t selected_raw_len;
  TensorView head;  // rows = n_classes, cols = embed_dim + 1
  // a secure-aggregation round (the frame's MASKED flag): modulus bits, unmasking threshold and
  // the common quantization scale, and sigma^2 of the discrete Gaussian noise each node adds to
  // its codes (--dp distributed; 0: none); zero otherwise
  bool masked;
  uint8_t mask_bits;
  uint16_t threshold;
  float secagg_scale;
  uint32_t noise_var;

  // True when the node `id` (len bytes) takes part in this round (always, if n_selected = 0).
  bool selects(const char* id, size_t len) const;
  // Selected id i < n_selected (walks the list: O(i)).
  IdRef selected_id(uint16_t i) const;
};

// Lean by design: the node is the topic's, the model and epochs are the round's (docs/WIRE.md).
struct UpdateView {
  uint32_t round_id;
  uint32_t n_samples;
  float loss;         // binary16 on the wire, widened
  float accuracy;
  float update_norm;
  TensorView delta;          // when !masked
  bool masked;
  MaskedView masked_delta;   // when masked
};

// UNMASK: the coordinator asks a round's survivors for their masks with the dropped nodes.
struct UnmaskView {
  uint32_t round_id;
  uint16_t n_survivors;
  uint16_t n_dropped;
  const uint8_t* dropped_raw;  // the n_dropped encoded `str`s

  IdRef dropped_id(uint16_t i) const;  // walks the list: O(i)
};

// REVEAL: a survivor's round seeds for the dropped peers it was asked about.
struct RevealView {
  uint32_t round_id;
  uint16_t n;
  const uint8_t* raw;  // n x {str peer; u8 seed[32]}

  IdRef peer(uint16_t i) const;
  const uint8_t* seed(uint16_t i) const;
};

// Checks the frame (header, magic, version, type, flags, auth, room for the trailer, then the CRC
// of an auth-0 frame, in that order) and points `*body` at its hdr->body_len body bytes.
[[nodiscard]] Status decode_frame(const uint8_t* buf, size_t len, FrameHeader* hdr, const uint8_t** body);

// The receiver's check of a decoded frame's authentication: with `auth` (a key), the frame must
// be tagged (else Unauthenticated) with the tag of auth->key over auth->topic and the frame (else
// BadTag, compared in constant time); without (null), it must carry a CRC (else NoKey).
[[nodiscard]] Status verify_frame(const uint8_t* buf, const FrameHeader& hdr, const FrameAuth* auth);

// The 16-byte tag of frame bytes [0, signed_len) published on auth.topic.
void frame_tag(const FrameAuth& auth, const uint8_t* buf, size_t signed_len, uint8_t out[kTagLen]);

// Decode a body (as given by decode_frame) of the matching type; it must be consumed exactly.
// `masked` is the frame's MASKED flag.
[[nodiscard]] Status decode_hello(const uint8_t* body, size_t len, HelloView* out);
[[nodiscard]] Status decode_global(const uint8_t* body, size_t len, GlobalView* out, bool masked = false);
[[nodiscard]] Status decode_update(const uint8_t* body, size_t len, UpdateView* out, bool masked = false);
[[nodiscard]] Status decode_unmask(const uint8_t* body, size_t len, UnmaskView* out);
[[nodiscard]] Status decode_reveal(const uint8_t* body, size_t len, RevealView* out);

// decode_frame, verify_frame with the receiver's `auth` (null: a receiver without keys), then the
// body; a valid frame of another type is Status::BadType.
[[nodiscard]] Status decode_hello_frame(const uint8_t* buf, size_t len, const FrameAuth* auth, HelloView* out);
[[nodiscard]] Status decode_global_frame(const uint8_t* buf, size_t len, const FrameAuth* auth, GlobalView* out);
[[nodiscard]] Status decode_update_frame(const uint8_t* buf, size_t len, const FrameAuth* auth, UpdateView* out);
[[nodiscard]] Status decode_unmask_frame(const uint8_t* buf, size_t len, const FrameAuth* auth, UnmaskView* out);
[[nodiscard]] Status decode_reveal_frame(const uint8_t* buf, size_t len, const FrameAuth* auth, RevealView* out);

// ---------------------------------------------------------------------------------------------
// Encoder inputs (plain structs; zero-initialize with `{}` and fill in)

struct TensorFields {
  uint8_t bits;        // 8, 4, 2 or 32
  uint8_t scale_mode;  // 0 or 1; 0 for bits 32
  uint16_t rows;
  uint16_t cols;
  const float* scales;  // bits 8/4/2: 1 (scale_mode 0) or rows (scale_mode 1) scales, each a
                        // binary16 value (round_to_half): the encoder refuses others (BadValue)
  const int8_t* codes;  // bits 8/4/2: rows*cols codes in [-qmax, qmax], one per value
  const float* values;  // bits 32: rows*cols values
};

struct HelloFields {
  const char* node_id;
  uint8_t node_id_len;
  uint32_t fw_version;
  uint8_t model_hash[kModelHashLen];
  uint32_t n_samples;
  uint32_t free_ram;
  uint32_t max_payload;
  uint16_t embed_dim;
  uint16_t n_classes;
  uint8_t uplink_bits;
  uint8_t board;
  const FrameAuth* auth;  // null: CRC-32 trailer; else a tag under auth->key over auth->topic
};

struct GlobalFields {
  uint32_t round_id;
  uint8_t model_hash[kModelHashLen];
  uint16_t embed_dim;
  uint16_t n_classes;
  uint16_t epochs;
  uint16_t batch_size;
  float lr;
  float prox_mu;
  float clip_norm;
  uint8_t uplink_bits;
  uint8_t uplink_scale_mode;
  uint32_t seed;
  uint16_t n_selected;
  const IdRef* selected;  // n_selected ids
  TensorFields head;
  bool masked;            // a secure-aggregation round: the next four fields are sent
  uint8_t mask_bits;
  uint16_t threshold;
  float secagg_scale;
  uint32_t noise_var;
  const FrameAuth* auth;
};

struct MaskedFields {
  uint8_t bits;            // 9..32
  uint16_t rows;
  uint16_t cols;
  const uint32_t* values;  // rows*cols values below 2^bits
};

struct UpdateFields {
  uint32_t round_id;
  uint32_t n_samples;
  float loss;         // sent as binary16, saturated at 65504 (so are the next two)
  float accuracy;
  float update_norm;
  TensorFields delta;        // when !masked
  bool masked;
  MaskedFields masked_delta;  // when masked
  const FrameAuth* auth;
};

struct UnmaskFields {
  uint32_t round_id;
  uint16_t n_survivors;
  uint16_t n_dropped;
  const IdRef* dropped;
  const FrameAuth* auth;
};

struct RevealFields {
  uint32_t round_id;
  uint16_t n;
  const IdRef* peers;                    // n ids
  const uint8_t (*seeds)[kRoundSeedLen];  // n seeds
  const FrameAuth* auth;
};

// Write the frame into buf[0, cap) and set *len to its size. buf == nullptr: size-only pass
// (returns Ok and the size without checking the fields). Status::BufferFull when cap is too small.
[[nodiscard]] Status encode_hello(const HelloFields& f, uint8_t* buf, size_t cap, size_t* len);
[[nodiscard]] Status encode_global(const GlobalFields& f, uint8_t* buf, size_t cap, size_t* len);
[[nodiscard]] Status encode_update(const UpdateFields& f, uint8_t* buf, size_t cap, size_t* len);
[[nodiscard]] Status encode_unmask(const UnmaskFields& f, uint8_t* buf, size_t cap, size_t* len);
[[nodiscard]] Status encode_reveal(const RevealFields& f, uint8_t* buf, size_t cap, size_t* len);

// Bytes the frame takes (the size-only pass).
size_t encoded_size_hello(const HelloFields& f);
size_t encoded_size_global(const GlobalFields& f);
size_t encoded_size_update(const UpdateFields& f);
size_t encoded_size_reveal(const RevealFields& f);

}  // namespace tinyfl
