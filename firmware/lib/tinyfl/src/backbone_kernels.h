// Internal: the int8 kernels of the backbone (backbone_kernels.cpp), run by backbone_run() on
// layers backbone_parse() has validated. Not part of the public API.
#pragma once
#include <stdint.h>

#include "tinyfl/backbone.h"

namespace tinyfl {
namespace kernels {

int32_t le_i32(const uint8_t* p);
double le_f64(const uint8_t* p);

void conv2d(const BackboneLayer& l, const int8_t* in, int8_t* out);
void depthwise_conv2d(const BackboneLayer& l, const int8_t* in, int8_t* out);
void max_pool2d(const BackboneLayer& l, const int8_t* in, int8_t* out);
void avg_pool2d(const BackboneLayer& l, const int8_t* in, int8_t* out);
void mean(const BackboneLayer& l, const int8_t* in, int8_t* out);
void fully_connected(const BackboneLayer& l, const int8_t* in, int8_t* out);
void add(const BackboneLayer& l, const int8_t* a, const int8_t* b, int8_t* out);
void pad(const BackboneLayer& l, const int8_t* in, int8_t* out);
void requantize(const BackboneLayer& l, const int8_t* in, int8_t* out);

}  // namespace kernels
}  // namespace tinyfl
