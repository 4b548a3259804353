// SHA-256, HMAC-SHA256 and HKDF against the published vectors, copied as the documents print them
// (hex), plus incremental splits, chunked HKDF output, tag comparison and wiping.
#include <stdint.h>
#include <string.h>

#include "../check.h"
#include "tinyfl/hkdf.h"
#include "tinyfl/hmac.h"
#include "tinyfl/sha256.h"

using namespace tinyfl;

namespace {

// Decodes a hex string (no separators) into `out`; returns the byte count (cap-checked by CHECK).
size_t unhex(const char* hex, uint8_t* out, size_t cap) {
  const size_t n = strlen(hex) / 2;
  CHECK(strlen(hex) % 2 == 0);
  CHECK(n <= cap);
  auto nibble = [](char c) -> uint8_t {
    if (c >= '0' && c <= '9') return static_cast<uint8_t>(c - '0');
    if (c >= 'a' && c <= 'f') return static_cast<uint8_t>(c - 'a' + 10);
    if (c >= 'A' && c <= 'F') return static_cast<uint8_t>(c - 'A' + 10);
    tinyfl_test::fail("bad hex digit", __FILE__, __LINE__);
    return 0;
  };
  for (size_t i = 0; i < n && i < cap; ++i)
    out[i] = static_cast<uint8_t>((nibble(hex[2 * i]) << 4) | nibble(hex[2 * i + 1]));
  return n;
}

// True when `got` (len bytes) equals the hex string `want`; prints both otherwise.
bool same_hex(const uint8_t* got, size_t len, const char* want) {
  char hex[2 * 256 + 1];
  if (len > 256) return false;
  for (size_t i = 0; i < len; ++i) snprintf(hex + 2 * i, 3, "%02x", got[i]);
  hex[2 * len] = 0;
  if (strcmp(hex, want) == 0) return true;
  printf("  got  %s\n  want %s\n", hex, want);
  return false;
}

const uint8_t* text(const char* s) { return reinterpret_cast<const uint8_t*>(s); }

// ---- FIPS 180-4 / NIST example vectors ----
// NIST CSRC "Cryptographic Standards and Guidelines: Examples with Intermediate Values",
// SHA256.pdf (one-block "abc", two-block 448-bit message) and FIPS 180-2 Appendix B.3 (one million
// 'a'); the empty string is the NIST CAVP SHAVS short-message vector Len = 0.
const char kAbc[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const char kTwoBlockMsg[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
const char kTwoBlock[] = "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
const char kMillionA[] = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
const char kEmpty[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// ---- RFC 4231, section 4 (HMAC-SHA-256 rows of test cases 1-7) ----
struct HmacCase {
  const char* name;
  const char* key;   // hex
  const char* data;  // hex
  const char* mac;   // hex; test case 5 prints only the 128-bit truncation
};
const char kKeyAa131[] =
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const HmacCase kRfc4231[] = {
    // 4.2 Test Case 1
    {"4.2", "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "4869205468657265",
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
    // 4.3 Test Case 2: a key shorter than the output
    {"4.3", "4a656665", "7768617420646f2079612077616e7420666f72206e6f7468696e673f",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
    // 4.4 Test Case 3: combined length of key and data above 64 bytes
    {"4.4", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
     "dddddddd",
     "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
    // 4.5 Test Case 4
    {"4.5", "0102030405060708090a0b0c0d0e0f10111213141516171819",
     "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"
     "cdcdcdcd",
     "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
    // 4.6 Test Case 5: output truncated to 128 bits
    {"4.6", "0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c", "546573742057697468205472756e636174696f6e",
     "a3b6167473100ee06e0c796c2955552b"},
    // 4.7 Test Case 6: a 131-byte key, longer than the block
    {"4.7", kKeyAa131,
     "54657374205573696e67204c6172676572205468616e20426c6f636b2d53697a65204b6579202d2048617368204b"
     "6579204669727374",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
    // 4.8 Test Case 7: a key and data longer than the block
    {"4.8", kKeyAa131,
     "5468697320697320612074657374207573696e672061206c6172676572207468616e20626c6f636b2d73697a65206b"
     "657920616e642061206c6172676572207468616e20626c6f636b2d73697a6520646174612e20546865206b6579206e"
     "6565647320746f20626520686173686564206265666f7265206265696e6720757365642062792074686520484d4143"
     "20616c676f726974686d2e",
     "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
};

// ---- RFC 5869, Appendix A.1-A.3 (SHA-256 test cases 1-3) ----
struct HkdfCase {
  const char* name;
  const char* ikm;
  const char* salt;  // "" for "salt = (0 octets)"
  const char* info;
  size_t length;
  const char* prk;
  const char* okm;
};
const HkdfCase kRfc5869[] = {
    // A.1 Test Case 1: basic test case with SHA-256
    {"A.1", "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "000102030405060708090a0b0c",
     "f0f1f2f3f4f5f6f7f8f9", 42, "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
     "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"},
    // A.2 Test Case 2: longer inputs and outputs
    {"A.2",
     "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f"
     "303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f",
     "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f"
     "909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
     "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
     "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
     82, "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
     "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09"
     "da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87"},
    // A.3 Test Case 3: zero-length salt and info
    {"A.3", "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "", "", 42,
     "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
     "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"},
};

uint8_t g_a[256], g_b[256], g_c[256];
uint8_t g_big[1000];

}  // namespace

// ---- SHA-256 ----

TINYFL_TEST(sha256_fips_one_block_abc) {
  uint8_t d[32];
  sha256(text("abc"), 3, d);
  CHECK(same_hex(d, 32, kAbc));
}

TINYFL_TEST(sha256_fips_two_block_448_bits) {
  uint8_t d[32];
  CHECK_EQ(strlen(kTwoBlockMsg), 56);  // 448 bits: the length field forces a second block
  sha256(text(kTwoBlockMsg), strlen(kTwoBlockMsg), d);
  CHECK(same_hex(d, 32, kTwoBlock));
}

TINYFL_TEST(sha256_empty_string) {
  uint8_t d[32];
  sha256(nullptr, 0, d);
  CHECK(same_hex(d, 32, kEmpty));
  Sha256 ctx;
  ctx.update(nullptr, 0);
  ctx.final(d);
  CHECK(same_hex(d, 32, kEmpty));
}

TINYFL_TEST(sha256_one_million_a) {
  memset(g_big, 'a', sizeof g_big);
  Sha256 ctx;
  for (int i = 0; i < 1000; ++i) ctx.update(g_big, sizeof g_big);  // 1000 x 1000 bytes
  uint8_t d[32];
  ctx.final(d);
  CHECK(same_hex(d, 32, kMillionA));
}

TINYFL_TEST(sha256_every_split_of_a_two_block_message) {
  // 119 bytes: two blocks after padding (119 + 1 + 8 = 128), so splits cross the block boundary
  // and end in the padding's 0x80 byte's block.
  uint8_t msg[119];
  for (size_t i = 0; i < sizeof msg; ++i) msg[i] = static_cast<uint8_t>(i * 37 + 11);
  uint8_t want[32];
  sha256(msg, sizeof msg, want);
  for (size_t cut = 0; cut <= sizeof msg; ++cut) {
    for (size_t cut2 = cut; cut2 <= sizeof msg; cut2 += 13) {
      Sha256 ctx;
      ctx.update(msg, cut);
      ctx.update(msg + cut, cut2 - cut);
      ctx.update(msg + cut2, sizeof msg - cut2);
      uint8_t got[32];
      ctx.final(got);
      CHECK(memcmp(got, want, 32) == 0);
    }
  }
  // Byte by byte, and the 448-bit vector split at every offset.
  Sha256 ctx;
  for (size_t i = 0; i < sizeof msg; ++i) ctx.update(msg + i, 1);
  uint8_t got[32];
  ctx.final(got);
  CHECK(memcmp(got, want, 32) == 0);
  const size_t n = strlen(kTwoBlockMsg);
  for (size_t cut = 0; cut <= n; ++cut) {
    Sha256 c2;
    c2.update(text(kTwoBlockMsg), cut);
    c2.update(text(kTwoBlockMsg) + cut, n - cut);
    c2.final(got);
    CHECK(same_hex(got, 32, kTwoBlock));
  }
}

TINYFL_TEST(sha256_padding_boundaries) {
  // Lengths around 55/56/63/64 bytes take different padding paths; the incremental and one-shot
  // paths must agree, and every length must give a distinct digest.
  uint8_t msg[130];
  for (size_t i = 0; i < sizeof msg; ++i) msg[i] = static_cast<uint8_t>(0xA5 ^ i);
  uint8_t prev[32] = {};
  for (size_t len = 50; len <= sizeof msg; ++len) {
    uint8_t one[32], inc[32];
    sha256(msg, len, one);
    Sha256 ctx;
    ctx.update(msg, len / 3);
    ctx.update(msg + len / 3, len - len / 3);
    ctx.final(inc);
    CHECK(memcmp(one, inc, 32) == 0);
    CHECK(memcmp(one, prev, 32) != 0);
    memcpy(prev, one, 32);
  }
}

TINYFL_TEST(sha256_final_wipes_and_init_restarts) {
  Sha256 ctx;
  ctx.update(text("abc"), 3);
  uint8_t d[32];
  ctx.final(d);
  const uint8_t* raw = reinterpret_cast<const uint8_t*>(&ctx);
  size_t nonzero = 0;
  for (size_t i = 0; i < sizeof ctx; ++i) nonzero += raw[i] != 0;
  CHECK_EQ(nonzero, 0);
  ctx.init();
  ctx.update(text("abc"), 3);
  ctx.final(d);
  CHECK(same_hex(d, 32, kAbc));
}

// ---- HMAC-SHA256 ----

TINYFL_TEST(hmac_rfc4231_all_cases) {
  int passed = 0;
  for (const HmacCase& c : kRfc4231) {
    const size_t key_len = unhex(c.key, g_a, sizeof g_a);
    const size_t data_len = unhex(c.data, g_b, sizeof g_b);
    const size_t mac_len = strlen(c.mac) / 2;  // 32, or 16 for the truncated case 5
    uint8_t mac[32];
    hmac_sha256(g_a, key_len, g_b, data_len, mac);
    if (same_hex(mac, mac_len, c.mac)) {
      ++passed;
    } else {
      printf("  RFC 4231 section %s\n", c.name);
    }
    uint8_t want[32];
    unhex(c.mac, want, sizeof want);
    CHECK(tag_equal(mac, want, mac_len));
  }
  CHECK_EQ(passed, 7);
}

TINYFL_TEST(hmac_incremental_matches_one_shot_and_key_is_reusable) {
  const HmacCase& c = kRfc4231[6];  // test case 7: long key, 152 bytes of data
  const size_t key_len = unhex(c.key, g_a, sizeof g_a);
  const size_t data_len = unhex(c.data, g_b, sizeof g_b);
  HmacSha256 mac;
  mac.init(g_a, key_len);
  for (size_t cut = 0; cut <= data_len; cut += 7) {
    mac.update(g_b, cut);
    mac.update(g_b + cut, data_len - cut);
    uint8_t tag[32];
    mac.final(tag);  // final() leaves the key loaded for the next message
    CHECK(same_hex(tag, 32, c.mac));
  }
  // reset() drops a half-fed message.
  mac.update(text("junk"), 4);
  mac.reset();
  mac.update(g_b, data_len);
  uint8_t tag[32];
  mac.final(tag);
  CHECK(same_hex(tag, 32, c.mac));
  mac.wipe();
}

TINYFL_TEST(hmac_key_lengths_around_the_block) {
  // Keys of 63, 64 and 65 bytes: 64 is used as is, 65 is hashed; the hashed key then behaves as
  // the 32-byte key SHA-256(K) (RFC 2104, section 2).
  uint8_t key[65];
  for (size_t i = 0; i < sizeof key; ++i) key[i] = static_cast<uint8_t>(i + 1);
  uint8_t t63[32], t64[32], t65[32], hashed[32], t_h[32];
  hmac_sha256(key, 63, text("msg"), 3, t63);
  hmac_sha256(key, 64, text("msg"), 3, t64);
  hmac_sha256(key, 65, text("msg"), 3, t65);
  CHECK(memcmp(t63, t64, 32) != 0);
  CHECK(memcmp(t64, t65, 32) != 0);
  sha256(key, 65, hashed);
  hmac_sha256(hashed, 32, text("msg"), 3, t_h);
  CHECK(memcmp(t65, t_h, 32) == 0);
  // A short key is zero-padded: K and K || 00 are the same HMAC key.
  uint8_t padded[33] = {};
  memcpy(padded, hashed, 32);
  uint8_t t_p[32];
  hmac_sha256(padded, 33, text("msg"), 3, t_p);
  CHECK(memcmp(t_p, t_h, 32) == 0);
}

TINYFL_TEST(hmac_wipe_zeroes_the_keyed_context) {
  HmacSha256 mac;
  mac.init(text("Jefe"), 4);
  mac.update(text("what do"), 7);
  mac.wipe();
  const uint8_t* raw = reinterpret_cast<const uint8_t*>(&mac);
  size_t nonzero = 0;
  for (size_t i = 0; i < sizeof mac; ++i) nonzero += raw[i] != 0;
  CHECK_EQ(nonzero, 0);
}

TINYFL_TEST(tag_equal_detects_a_difference_in_any_byte_and_bit) {
  uint8_t a[32], b[32];
  for (size_t i = 0; i < 32; ++i) a[i] = b[i] = static_cast<uint8_t>(i * 7 + 3);
  for (size_t len = 1; len <= 32; ++len) CHECK(tag_equal(a, b, len));
  for (size_t i = 0; i < 32; ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      b[i] = static_cast<uint8_t>(a[i] ^ (1u << bit));
      CHECK(!tag_equal(a, b, 32));
      CHECK(!tag_equal(a, b, i + 1));  // the difference in the last compared byte
      if (i > 0) CHECK(tag_equal(a, b, i));  // bytes past len are not compared
      b[i] = a[i];
    }
  }
  CHECK(!tag_equal(a, b, 0));  // an empty tag never verifies
}

// ---- HKDF ----

TINYFL_TEST(hkdf_rfc5869_cases_1_to_3) {
  int passed = 0;
  for (const HkdfCase& c : kRfc5869) {
    const size_t ikm_len = unhex(c.ikm, g_a, sizeof g_a);
    const size_t salt_len = unhex(c.salt, g_b, sizeof g_b);
    const size_t info_len = unhex(c.info, g_c, sizeof g_c);
    uint8_t prk[32], okm[100];
    hkdf_extract(salt_len > 0 ? g_b : nullptr, salt_len, g_a, ikm_len, prk);
    CHECK(same_hex(prk, 32, c.prk));
    CHECK(hkdf_expand(prk, 32, info_len > 0 ? g_c : nullptr, info_len, okm, c.length) == Status::Ok);
    const bool ok = same_hex(prk, 32, c.prk) && same_hex(okm, c.length, c.okm);
    if (ok) {
      ++passed;
    } else {
      printf("  RFC 5869 %s\n", c.name);
    }
    // "salt not provided" and a zero-length salt are HashLen zero bytes.
    uint8_t zeros[32] = {}, prk2[32];
    if (salt_len == 0) {
      hkdf_extract(zeros, 32, g_a, ikm_len, prk2);
      CHECK(memcmp(prk, prk2, 32) == 0);
    }
  }
  CHECK_EQ(passed, 3);
}

TINYFL_TEST(hkdf_expand_in_chunks_of_every_size) {
  const HkdfCase& c = kRfc5869[1];  // 82 bytes: three blocks, the last one partial
  const size_t info_len = unhex(c.info, g_c, sizeof g_c);
  uint8_t prk[32], want[82];
  unhex(c.prk, prk, sizeof prk);
  unhex(c.okm, want, sizeof want);
  for (size_t chunk = 1; chunk <= 82; ++chunk) {
    HkdfExpand stream;
    CHECK(stream.init(prk, 32, g_c, info_len) == Status::Ok);
    uint8_t got[82];
    for (size_t at = 0; at < 82; at += chunk) {
      const size_t n = 82 - at < chunk ? 82 - at : chunk;
      CHECK(stream.read(got + at, n) == Status::Ok);
    }
    CHECK(memcmp(got, want, 82) == 0);
    stream.wipe();
  }
  // Uneven pieces: 0, 1, 31, 2, 48 bytes.
  HkdfExpand stream;
  CHECK(stream.init(prk, 32, g_c, info_len) == Status::Ok);
  uint8_t got[82];
  size_t at = 0;
  const size_t pieces[] = {0, 1, 31, 2, 48};
  for (size_t n : pieces) {
    CHECK(stream.read(got + at, n) == Status::Ok);
    at += n;
  }
  CHECK_EQ(at, 82);
  CHECK(memcmp(got, want, 82) == 0);
}

TINYFL_TEST(hkdf_expand_limits_and_arguments) {
  uint8_t prk[32];
  for (size_t i = 0; i < 32; ++i) prk[i] = static_cast<uint8_t>(i);
  HkdfExpand stream;
  uint8_t out[64];
  CHECK(stream.read(out, 1) == Status::BadValue);  // never initialised
  CHECK(stream.init(prk, 31, nullptr, 0) == Status::BadLength);  // PRK shorter than HashLen
  CHECK(stream.read(out, 1) == Status::BadValue);
  CHECK(stream.init(nullptr, 32, nullptr, 0) == Status::BadLength);
  CHECK(stream.init(prk, 32, nullptr, 5) == Status::BadLength);
  CHECK(stream.init(prk, 32, text("round 7"), 7) == Status::Ok);
  CHECK_EQ(stream.remaining(), 8160);
  // Draw the whole 255 blocks; one byte more is refused and writes nothing.
  uint8_t last_block[32] = {};
  for (size_t i = 0; i < 255; ++i) {
    CHECK(stream.read(last_block, 32) == Status::Ok);
  }
  CHECK_EQ(stream.remaining(), 0);
  uint8_t guard = 0x5A;
  CHECK(stream.read(&guard, 1) == Status::TooLarge);
  CHECK_EQ(guard, 0x5A);
  CHECK(stream.read(nullptr, 0) == Status::Ok);
  // The one-shot form agrees on the last block and refuses more than 8160 bytes.
  static uint8_t all[kHkdfMaxOutput + 1];
  CHECK(hkdf_expand(prk, 32, text("round 7"), 7, all, kHkdfMaxOutput) == Status::Ok);
  CHECK(memcmp(all + kHkdfMaxOutput - 32, last_block, 32) == 0);
  CHECK(hkdf_expand(prk, 32, text("round 7"), 7, all, kHkdfMaxOutput + 1) == Status::TooLarge);
  // The info string separates streams: another round gives other bytes.
  uint8_t r7[32], r8[32];
  CHECK(hkdf_expand(prk, 32, text("round 7"), 7, r7, 32) == Status::Ok);
  CHECK(hkdf_expand(prk, 32, text("round 8"), 7, r8, 32) == Status::Ok);
  CHECK(memcmp(r7, r8, 32) != 0);
  // wipe() leaves an unusable, zeroed stream.
  stream.wipe();
  CHECK(stream.read(out, 1) == Status::BadValue);
}

int main() { return tinyfl_test::run_all(); }
