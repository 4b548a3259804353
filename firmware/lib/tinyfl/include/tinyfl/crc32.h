// CRC-32/ISO-HDLC (the CRC of zlib, PNG and Ethernet): reflected polynomial 0xEDB88320, initial
// value and final XOR 0xFFFFFFFF; crc32("123456789") = 0xCBF43926.
#pragma once
#include <stddef.h>
#include <stdint.h>

namespace tinyfl {

// CRC of `len` bytes. To checksum data in pieces, pass the CRC of everything before as `prev`
// (as zlib's crc32(prev, data, len)): crc32(b, nb, crc32(a, na)) == crc32(a || b).
uint32_t crc32(const uint8_t* data, size_t len, uint32_t prev = 0);

}  // namespace tinyfl
