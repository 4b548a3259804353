// The backbones compiled into this firmware, found by the model hash a data blob names.
//
// Each model is the firmware model blob of a model folder's backbone.h (docs/MODEL.md), kept in
// flash and parsed in place. Which folders an image carries is configuration: `custom_models` in
// platformio.ini or the environment variable TINYFL_MODELS; the library's build script generates
// the registry (compiled_model_count, compiled_model) from that list.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "tinyfl/backbone.h"
#include "tinyfl/blob.h"
#include "tinyfl/cache.h"
#include "tinyfl/config.h"
#include "tinyfl/dsp_stage.h"
#include "tinyfl/logline.h"
#include "tinyfl/samples.h"
#include "tinyfl/status.h"

namespace tinyfl {

struct CompiledModel {
  const char* task;     // the model's task name, e.g. "har"
  const uint8_t* blob;  // firmware model blob
  size_t blob_len;
  const uint8_t* hash;  // 8 bytes: first 8 bytes of the SHA-256 of blob and dsp, what HELLO reports
  const uint8_t* dsp;   // the DSP stage's record (docs/DSP.md), or nullptr: raw windows go straight in
  size_t dsp_len;
};

// The image's models in the order of its model list, then nullptr; kModelCount of them. Defined
// by the registry the build generates (registry.cpp in the build folder); use the functions below.
extern const CompiledModel* const kModels[];
extern const size_t kModelCount;

size_t compiled_model_count();
// i < compiled_model_count().
const CompiledModel& compiled_model(size_t i);
// The model with this 8-byte hash, or nullptr when the firmware does not carry it.
const CompiledModel* find_compiled_model(const uint8_t hash[8]);

// Working memory for running a model: the parsed backbone and DSP stage, the stage's features (the
// backbone's input) and one scratch the stage and then the backbone use. Large (the scratch is
// kBackboneArena bytes or the DSP work, whichever is larger): give it static storage.
struct BackboneWork {
  Backbone model;
  DspStage stage;  // block_count 0: the model has no DSP stage
  int8_t features[kDspMaxFeatures];
  union {
    alignas(8) uint8_t arena[kBackboneArena];
    DspWork dsp;  // only while the stage runs, before the backbone needs the arena
  };
};

// A model's DSP stage as the front-end of embed_windows_through / load_windows_through. Keeps the
// CRC32 of every feature vector it made, in order, which the node logs beside the embeddings' (the
// host recomputes both).
struct DspInput {
  BackboneWork& work;
  uint32_t feature_crc = 0;

  WindowShape shape() const {
    return {static_cast<uint32_t>(work.stage.input_len()), work.stage.in_scale, work.stage.in_zp};
  }
  Status run(const int8_t* window, const int8_t** input);
};

// What the node's samples came from, for its boot log.
struct BlobLoad {
  const CompiledModel* model = nullptr;  // null for a feature blob
  LoadSummary summary;
  uint32_t feature_crc = 0;  // of the DSP stage's features, when the model has a stage
};

// Fills `cache` from a data blob: feature vectors (kind 1) are copied; raw windows (kind 2) run
// through the DSP stage, if the model has one, and the compiled backbone whose hash the blob names (WrongModel when this firmware does not
// carry it; the parse or run status when the model or the blob does not fit).
[[nodiscard]] Status load_blob_samples(const BlobView& blob, EmbeddingCache& cache, BackboneWork& work,
                                       BlobLoad* source);

// "samples: 350 raw windows through the har backbone 6fd44058ec534a5d -> 350 embeddings (crc32
// 1a2b3c4d), 350 cached" (with a DSP stage: "... through the DSP stage (120 features, crc32
// 0badf00d) and the har backbone ...") or "samples: 350 feature vectors (dim 64), 350 cached".
void describe_blob_load(const BlobView& blob, const BlobLoad& load, const EmbeddingCache& cache, LogLine& line);

// Why a blob's model is missing: "blob needs model 0123456789abcdef; this firmware carries har
// 6fd44058ec534a5d, nsl-kdd 86175f5beafd3b69".
void describe_missing_model(const BlobView& blob, LogLine& line);

// Parses the compiled model into work.model (and its DSP stage into work.stage) and checks its
// scratch fits work.arena and the stage's features are the backbone's input (WrongModel if not).
[[nodiscard]] Status prepare_compiled_model(const CompiledModel& compiled, BackboneWork& work);

// The compiled model a raw-window blob names, parsed into work: WrongModel (and *model
// null) when this firmware does not carry it. *model may be null when not wanted.
[[nodiscard]] Status prepare_blob_model(const BlobView& blob, BackboneWork& work, const CompiledModel** model);

// Every window of a raw-window blob through work's prepared model (its DSP stage, if any, then the
// backbone) into `sink` as embed_windows does; `feature_crc` (may be null) gets the features' CRC32.
template <class Sink>
[[nodiscard]] Status embed_blob_windows(const BlobView& blob, BackboneWork& work, Sink&& sink, uint32_t* feature_crc) {
  if (work.stage.block_count == 0)
    return embed_windows(blob, work.model, work.arena, sizeof work.arena, static_cast<Sink&&>(sink));
  DspInput front{work};
  const Status s = embed_windows_through(blob, work.model, front, work.arena, sizeof work.arena, static_cast<Sink&&>(sink));
  if (feature_crc != nullptr) *feature_crc = front.feature_crc;
  return s;
}

}  // namespace tinyfl
