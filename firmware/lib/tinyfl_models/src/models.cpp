#include "tinyfl/models.h"

#include <string.h>

// kModels and kModelCount are generated for each image (firmware/tools/model_registry.py, run by
// this library's build script registry_build.py).
namespace tinyfl {

size_t compiled_model_count() { return kModelCount; }

const CompiledModel& compiled_model(size_t i) { return *kModels[i]; }

const CompiledModel* find_compiled_model(const uint8_t hash[8]) {
  for (size_t i = 0; i < kModelCount; ++i)
    if (memcmp(kModels[i]->hash, hash, 8) == 0) return kModels[i];
  return nullptr;
}



Status prepare_compiled_model(const CompiledModel& compiled, BackboneWork& work) {
  work.stage = DspStage{};
  Status s = backbone_parse(compiled.blob, compiled.blob_len, &work.model);
  if (s == Status::Ok && work.model.arena_bytes > sizeof work.arena) s = Status::TooLarge;
  if (s == Status::Ok && compiled.dsp != nullptr) {
    s = dsp_stage_parse(compiled.dsp, compiled.dsp_len, &work.stage);
    // The features are the backbone's input codes: as many, zero point 0.
    if (s == Status::Ok && (work.stage.features != work.model.input_len() || work.model.in_zp != 0))
      s = Status::WrongModel;
    if (s != Status::Ok) work.stage = DspStage{};
  }
  return s;
}

Status DspInput::run(const int8_t* window, const int8_t** input) {
  const Status s = dsp_stage_run(work.stage, window, work.stage.input_len(), work.dsp, work.features,
                                 sizeof work.features);
  if (s == Status::Ok) feature_crc = crc32(reinterpret_cast<const uint8_t*>(work.features), work.stage.features, feature_crc);
  *input = work.features;
  return s;
}

Status prepare_blob_model(const BlobView& blob, BackboneWork& work, const CompiledModel** model) {
  uint8_t hash[8];
  blob.copy_model_hash(hash);
  const CompiledModel* found = find_compiled_model(hash);
  if (model != nullptr) *model = found;
  return found == nullptr ? Status::WrongModel : prepare_compiled_model(*found, work);
}

Status load_blob_samples(const BlobView& blob, EmbeddingCache& cache, BackboneWork& work, BlobLoad* source) {
  BlobLoad result;
  Status s;
  if (blob.kind == static_cast<uint8_t>(BlobKind::Features)) {
    s = load_samples(blob, cache);
    result.summary.samples = blob.n_samples;
  } else {
    s = prepare_blob_model(blob, work, &result.model);
    if (s == Status::Ok && work.stage.block_count != 0) {
      DspInput front{work};
      s = load_windows_through(blob, work.model, front, work.arena, sizeof work.arena, cache, &result.summary);
      result.feature_crc = front.feature_crc;
    } else if (s == Status::Ok) {
      s = load_windows(blob, work.model, work.arena, sizeof work.arena, cache, &result.summary);
    }
  }
  if (source != nullptr) *source = result;
  return s;
}



void describe_blob_load(const BlobView& blob, const BlobLoad& load, const EmbeddingCache& cache, LogLine& line) {
  line.str("samples: ").u32(blob.n_samples);
  if (load.model == nullptr) {
    line.str(" feature vectors (dim ").u32(blob.dim).str(")");
  } else {
    line.str(" raw windows through the ");
    if (load.model->dsp != nullptr) line.str("DSP stage (crc32 ").hex32(load.feature_crc).str(") and the ");
    line.str(load.model->task).str(" backbone ").hex(load.model->hash, 8);
    line.str(" -> ").u32(load.summary.samples).str(" embeddings (crc32 ").hex32(load.summary.embedding_crc).str(")");
  }
  line.str(", ").u32(cache.size()).str(" cached");
}

void describe_missing_model(const BlobView& blob, LogLine& line) {
  uint8_t hash[8];
  blob.copy_model_hash(hash);
  line.str("blob needs model ").hex(hash, 8).str("; this firmware carries");
  for (size_t i = 0; i < compiled_model_count(); ++i)
    line.str(i == 0 ? " " : ", ").str(compiled_model(i).task).str(" ").hex(compiled_model(i).hash, 8);
  if (compiled_model_count() == 0) line.str(" no model");
}

}  // namespace tinyfl
