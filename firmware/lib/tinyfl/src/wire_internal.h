// What the codec's two files (wire.cpp: frames, HELLO, GLOBAL, UPDATE; wire_secagg.cpp: the
// secure-aggregation frames) share. Not part of the public API.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "tinyfl/cursor.h"
#include "tinyfl/wire.h"

namespace tinyfl {
namespace wire_detail {

// str node_id: read in full, then checked.
void read_id(Reader& r, const char** id, uint8_t* len);
// Status of a body: BadLength when bytes are left over.
Status finish(const Reader& r);
void write_header(Writer& w, FrameType type, const FrameAuth* auth, bool masked = false);
// Copies n bytes, or (p == nullptr, an invalid input) only moves the cursor so sizes stay right.
void put(Writer& w, const void* p, size_t n);
// Appends the trailer (CRC or tag) and, with a buffer, checks the frame by decoding it.
Status end_frame(Writer& w, bool fields_ok, const FrameAuth* auth, size_t* len);
// decode_frame and verify_frame, then the type: the body's bytes and the header.
Status open_typed(const uint8_t* buf, size_t len, const FrameAuth* auth, FrameType type, const uint8_t** body,
                  FrameHeader* hdr);

}  // namespace wire_detail
}  // namespace tinyfl
