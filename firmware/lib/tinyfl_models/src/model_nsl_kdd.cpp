// The nsl-kdd backbone (models/nsl-kdd/backbone.h). Its own translation unit: every generated header
// defines the same static symbol names.
#include "tinyfl/models.h"

#if TINYFL_MODEL_NSL_KDD
#include "nsl-kdd/backbone.h"

namespace tinyfl {
extern const CompiledModel kModel_nsl_kdd;
const CompiledModel kModel_nsl_kdd = {tinyfl_model_blob_task, tinyfl_model_blob, tinyfl_model_blob_len,
                                 tinyfl_model_blob_hash};
}  // namespace tinyfl
#endif
