// The node's trainable head: a dense layer with softmax cross-entropy, trained in float32 by
// minibatch SGD with an optional FedProx term (docs/WIRE.md, "Node behaviour on GLOBAL").
//
// Layout: k rows (classes) by d + 1 columns (embedding values, then the bias), row-major, float32.
// Every embedding x is extended with a trailing 1 so the bias is just the last column.
//
// host/tinyfl/model/head.py is the numpy reference of this file; testvectors/head/ holds its
// answers, which the firmware tests compare against.
//
// Cost: the kernels walk 4 rows at a time so one load of x_i serves 4 weights, keep their
// accumulators in FPU registers and have no per-weight branches. With batch size 1 the update of
// one sample and the forward pass of the next share one pass over W (head_step_stream); larger
// batches sum the gradient of the batch in a buffer and apply it once. Measured on Cortex-M4F
// (QEMU -icount, -Os, d = 64, k = 6, one sample): head_step_stream ~2700 instructions (7.0 d k),
// head_step_one (two passes) ~3300; k - 1 expf and one logf are ~450 of either.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "tinyfl/config.h"
#include "tinyfl/rng.h"
#include "tinyfl/status.h"

namespace tinyfl {

static_assert(kCacheCapacity <= 65536u, "sample indices are uint16_t");

// Where the trainer gets its labelled samples: the embedding cache on a node, arrays in tests.
// No virtual destructor on purpose: a deleting destructor would drag operator delete into images
// that must link no allocator; nothing is ever deleted through this interface.
class SampleSource {
 public:
  virtual uint32_t size() const = 0;
  virtual uint8_t label(uint32_t i) const = 0;
  // Writes the d float values of sample i (without the trailing 1) to x.
  virtual void embedding(uint32_t i, float* x) const = 0;

 protected:
  SampleSource() = default;
  SampleSource(const SampleSource&) = default;
  SampleSource& operator=(const SampleSource&) = default;
  ~SampleSource() = default;
};

// Hyper-parameters of a local round, as the GLOBAL frame carries them.
struct TrainConfig {
  uint16_t epochs;      // 1..kMaxEpochs
  uint16_t batch_size;  // >= 1; the last minibatch of an epoch may be smaller
  float lr;             // finite, > 0
  float prox_mu;        // finite, >= 0; 0 = plain FedAvg
  float clip_norm;      // finite, >= 0; 0 = no clipping
};

// What a local round reports (the UPDATE frame's fields besides the delta).
struct TrainResult {
  uint32_t n_samples;              // samples trained on
  uint16_t epochs;                 // epochs run
  float epoch_loss[kMaxEpochs];    // mean cross-entropy of each epoch, measured before each step
  float accuracy;                  // trained head (before clipping) on all samples, 0..1
  float update_norm;               // ||W - W0||_2 before clipping
};

// ---- Kernels: no checks, no state; usable on their own (benchmarks, tests) ----

// z[j] = sum_i w[j][i] * x1[i] for j < k; x1 holds d + 1 values ending in 1.
void head_logits(const float* w, const float* x1, uint16_t d, uint16_t k, float* z);

// Turns logits z[0..k) into softmax probabilities in place and returns -log p[y], computed as
// log(sum exp(z - max)) - (z[y] - max) so large logits cannot overflow.
float softmax_xent(float* z, uint16_t k, uint8_t y);

// Index of the largest logit; ties go to the lowest index.
uint16_t head_argmax(const float* z, uint16_t k);

// One SGD step on one sample (batch size 1): forward, softmax, and
// w -= lr * ((p - onehot(y)) x1^T + mu (w - w0)). Returns the sample's loss before the step.
// x1 holds d + 1 values ending in 1; w0 is read only when mu != 0 (may be null then).
// Preconditions (unchecked): 1 <= k <= kMaxClasses, y < k, d <= kMaxDim.
// Cost on Cortex-M4F: two passes over w (about 2.6 + 3.7 instructions per weight) plus k - 1
// expf and one logf. A sequence of samples runs faster through head_step_stream.
float head_step_one(float* w, const float* w0, const float* x1, uint8_t y, uint16_t d, uint16_t k, float lr,
                    float mu);

// The same step for a stream of samples, with the next sample's forward pass folded into this
// step's update pass (one pass over w per sample, about 5 instructions per weight):
// z holds the logits of x1 under the current w (head_logits, or the previous call's z_next) and
// is overwritten; when x1_next is not null, z_next receives the logits of x1_next under the
// updated w, exactly as head_logits would compute them. Returns the loss of (x1, y) before the step.
float head_step_stream(float* w, const float* w0, const float* x1, uint8_t y, float* z, const float* x1_next,
                       float* z_next, uint16_t d, uint16_t k, float lr, float mu);

// ---- The trainer: checks once at the start, then runs its kernels lean ----

class HeadTrainer {
 public:
  // A whole local round. w0: the global head (k x (d + 1)); on return `w` holds the delta
  // W - W0 after clipping (the trained head itself is W0 + delta / clip factor; the node only
  // sends the delta). Each epoch shuffles the indices 0..n-1 (reset to identity first) with rng,
  // then walks them in minibatches of batch_size. Afterwards rng has drawn exactly
  // epochs * (n - 1) numbers, and the caller quantizes with it.
  // Errors: BadValue (d or k is 0, epochs not 1..kMaxEpochs, batch_size 0, lr <= 0, mu < 0,
  // clip < 0, a label >= k), NonFinite (lr, mu, clip, a value of w0, or the trained head),
  // TooLarge (d > kMaxDim, k > kMaxClasses, more samples than kCacheCapacity), NoData (no samples).
  // w and w0 must not overlap.
  [[nodiscard]] Status train_local(const float* w0, float* w, uint16_t d, uint16_t k, const SampleSource& data,
                                   const TrainConfig& cfg, Rng& rng, TrainResult* out);

  // One minibatch step on samples idx[0..count): w -= lr * (mean gradient + mu (w - w0)).
  // Adds the samples' losses (before the step) to *loss_sum when it is not null.
  // Same checks as train_local for the shapes, lr, mu, labels and indices (BadValue if an index is
  // out of range or count is 0).
  [[nodiscard]] Status sgd_step(float* w, const float* w0, uint16_t d, uint16_t k, const SampleSource& data,
                                const uint16_t* idx, uint32_t count, float lr, float mu, float* loss_sum);

  // Fraction of samples whose argmax logit equals the label.
  [[nodiscard]] Status accuracy(const float* w, uint16_t d, uint16_t k, const SampleSource& data, float* out);

  // Mean cross-entropy of the head over all samples (no training).
  [[nodiscard]] Status mean_loss(const float* w, uint16_t d, uint16_t k, const SampleSource& data, float* out);

  // The order of the last epoch of train_local (n indices), for tests.
  const uint16_t* order() const { return order_; }

  // Bytes of working memory this object holds (its size; nothing else is allocated).
  static constexpr size_t working_bytes() { return sizeof(HeadTrainer); }

 private:
  Status check_shape(uint16_t d, uint16_t k, const SampleSource& data) const;
  void load_x(const SampleSource& data, uint32_t i, uint16_t d, float* x) const;
  float batch_step(float* w, const float* w0, uint16_t d, uint16_t k, const SampleSource& data, const uint16_t* idx,
                   uint32_t count, float lr, float mu);
  float epoch_stream(float* w, const float* w0, uint16_t d, uint16_t k, const SampleSource& data,
                     const uint16_t* idx, uint32_t count, float lr, float mu);

  float grad_[kHeadValues];       // gradient sum of the current minibatch
  float x_[2][kMaxDim + 1];       // current and next embedding, each with its trailing 1
  float z_[2][kMaxClasses];       // their logits, then probabilities
  uint16_t order_[kCacheCapacity];
};

}  // namespace tinyfl
