// IEEE-754 binary16 ("half") as the wire carries scales and UPDATE statistics (docs/WIRE.md).
//
// float_to_half saturates: a finite value beyond +-65504 becomes +-65504 (a scale or an update
// norm that large is still meaningful, infinity is not), then it rounds to nearest, ties to even,
// with subnormals; NaN stays a NaN and +-Inf stays +-Inf. This is numpy's float16 conversion after
// clipping, which the host uses; testvectors/half.bin pins both down.
#pragma once
#include <stdint.h>

namespace tinyfl {

constexpr float kHalfMax = 65504.0f;

uint16_t float_to_half(float f);
float half_to_float(uint16_t h);  // exact: every binary16 value is a float32 value

// f rounded to the binary16 the wire would carry.
inline float round_to_half(float f) { return half_to_float(float_to_half(f)); }

}  // namespace tinyfl
