// The har backbone (models/har/backbone.h). Its own translation unit: every generated header
// defines the same static symbol names.
#include "tinyfl/models.h"

#if TINYFL_MODEL_HAR
#include "har/backbone.h"

namespace tinyfl {
extern const CompiledModel kModel_har;
const CompiledModel kModel_har = {tinyfl_model_blob_task, tinyfl_model_blob, tinyfl_model_blob_len,
                                 tinyfl_model_blob_hash};
}  // namespace tinyfl
#endif
