#include "tinyfl/head.h"

#include <float.h>
#include <math.h>
#include <string.h>

namespace tinyfl {
namespace {

// ---- Row-block kernels ----
//
// Each kernel handles R rows of the head (R = 4, 2 or 1) in one pass over the columns: a loaded
// x_i serves R weights, the R accumulators or coefficients stay in FPU registers, and the column
// loop is unrolled so the R row pointers advance once per step (Cortex-M VFP loads take immediate
// offsets only, never a register offset). Sums run in column order, as the numpy reference's do,
// and the bias column (x = 1) is a plain add, which gives the same value as w * 1 + acc. Kernels
// are separate functions so each gets every register and a short prologue.
//
// Sizes were chosen by measurement on Cortex-M4F (QEMU -icount, -Os): 4-row blocks and 4-column
// steps for the two-pass kernels, 8-column steps for the streaming kernel, about 6 KiB of code in
// all. 6-row blocks would save ~7% time at k = 6 for +3 KiB of flash.

#define TINYFL_KERNEL __attribute__((noinline))

constexpr uint32_t kCols = 4;  // columns per step of dot_rows and axpy_rows

template <int N>
struct Rows {
  static constexpr int value = N;
};

// Calls fn(Rows<R>{}, j) for row blocks j.. covering rows 0..k: blocks of 4, then 2, then 1.
template <typename Fn>
inline void for_row_blocks(uint32_t k, Fn&& fn) {
  uint32_t j = 0;
  for (; j + 4 <= k; j += 4) fn(Rows<4>{}, j);
  if (j + 2 <= k) {
    fn(Rows<2>{}, j);
    j += 2;
  }
  if (j < k) fn(Rows<1>{}, j);
}

// z[r] = sum_{i<d} w[r][i] x[i] + w[r][d], for R rows of stride d + 1.
template <int R>
TINYFL_KERNEL void dot_rows(const float* w, uint32_t d, const float* x, float* z) {
  const float* p[R];
  float acc[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    p[r] = w + static_cast<size_t>(r) * (d + 1u);
    acc[r] = 0.0f;
  }
  uint32_t i = d;
  for (; i >= kCols; i -= kCols) {
    float xv[kCols];
#pragma GCC unroll 8
    for (uint32_t c = 0; c < kCols; ++c) xv[c] = x[c];
    x += kCols;
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      float a = acc[r];
#pragma GCC unroll 8
      for (uint32_t c = 0; c < kCols; ++c) a += p[r][c] * xv[c];
      acc[r] = a;
      p[r] += kCols;
    }
  }
  for (; i > 0; --i) {
    const float xi = *x++;
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[r] += *p[r]++ * xi;
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) z[r] = acc[r] + *p[r];
}

// m[r][i] += c[r] x[i] (bias column: += c[r]), for R rows of stride d + 1. This is both the SGD
// update (m = W, c = -lr (p - onehot)) and the minibatch gradient sum (m = G, c = p - onehot).
template <int R>
TINYFL_KERNEL void axpy_rows(float* m, uint32_t d, const float* x, const float* c) {
  float* p[R];
  float cr[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    p[r] = m + static_cast<size_t>(r) * (d + 1u);
    cr[r] = c[r];
  }
  uint32_t i = d;
  for (; i >= kCols; i -= kCols) {
    float xv[kCols];
#pragma GCC unroll 8
    for (uint32_t c = 0; c < kCols; ++c) xv[c] = x[c];
    x += kCols;
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      float* q = p[r];
#pragma GCC unroll 8
      for (uint32_t c = 0; c < kCols; ++c) q[c] += cr[r] * xv[c];
      p[r] = q + kCols;
    }
  }
  for (; i > 0; --i) {
    const float xi = *x++;
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      float* q = p[r]++;
      *q += cr[r] * xi;
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) *p[r] += cr[r];
}

// The streaming step: m[r][i] += c[r] x[i] as axpy_rows, and in the same pass
// zn[r] = sum_i m[r][i] xn[i] + m[r][d] over the updated values, i.e. the next sample's logits.
// One load and one store per weight serve both the update and the next forward pass; the values
// are exactly those of axpy_rows followed by dot_rows.
template <int R>
TINYFL_KERNEL void step_rows(float* m, uint32_t d, const float* x, const float* c, const float* xn, float* zn) {
  float* p[R];
  float cr[R];
  float acc[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    p[r] = m + static_cast<size_t>(r) * (d + 1u);
    cr[r] = c[r];
    acc[r] = 0.0f;
  }
  constexpr uint32_t kStep = 8;  // x and xn of 8 columns, R coefficients, R sums: 16 + 2R FPU registers
  uint32_t i = d;
  for (; i >= kStep; i -= kStep) {
    float xv[kStep], nv[kStep];
#pragma GCC unroll 8
    for (uint32_t c = 0; c < kStep; ++c) {
      xv[c] = x[c];
      nv[c] = xn[c];
    }
    x += kStep;
    xn += kStep;
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      float* q = p[r];
      float a = acc[r];
#pragma GCC unroll 8
      for (uint32_t c = 0; c < kStep; ++c) {
        const float v = q[c] + cr[r] * xv[c];
        q[c] = v;
        a += v * nv[c];
      }
      acc[r] = a;
      p[r] = q + kStep;
    }
  }
  for (; i > 0; --i) {
    const float xi = *x++, ni = *xn++;
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      float* q = p[r]++;
      const float v = *q + cr[r] * xi;
      *q = v;
      acc[r] += v * ni;
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    const float b = *p[r] + cr[r];
    *p[r] = b;
    zn[r] = acc[r] + b;
  }
}

// m += c x1^T over a k x (d + 1) matrix.
void add_outer(float* m, const float* x1, uint32_t d, uint32_t k, const float* c) {
  for_row_blocks(k, [=](auto rows, uint32_t j) {
    axpy_rows<decltype(rows)::value>(m + j * (d + 1u), d, x1, c + j);
  });
}

// m += c x1^T, and zn = m xn1 with the updated m.
void add_outer_then_logits(float* m, const float* x1, uint32_t d, uint32_t k, const float* c, const float* xn1,
                           float* zn) {
  for_row_blocks(k, [=](auto rows, uint32_t j) {
    step_rows<decltype(rows)::value>(m + j * (d + 1u), d, x1, c + j, xn1, zn + j);
  });
}

// The FedProx pull towards the global head: w -= a (w - w0) over m values.
void prox_pull(float* w, const float* w0, size_t m, float a) {
  for (size_t i = 0; i < m; ++i) w[i] -= a * (w[i] - w0[i]);
}

// w += s g over m values (the minibatch update, s = -lr / B).
void apply_gradient(float* w, const float* g, size_t m, float s) {
  for (size_t i = 0; i < m; ++i) w[i] += s * g[i];
}

// Exponentiates z[j] - max in place and returns their sum; *zmax gets the max. The largest logit
// (the first of equal ones) becomes exactly 1 without calling expf (expf(0) = 1): one call saved.
float exp_shifted(float* z, uint32_t k, float* zmax) {
  uint32_t top = 0;
  float m = z[0];
  for (uint32_t j = 1; j < k; ++j) {
    if (z[j] > m) {
      m = z[j];
      top = j;
    }
  }
  float s = 1.0f;
  for (uint32_t j = 0; j < top; ++j) s += (z[j] = expf(z[j] - m));
  z[top] = 1.0f;
  for (uint32_t j = top + 1; j < k; ++j) s += (z[j] = expf(z[j] - m));
  *zmax = m;
  return s;
}

bool finite(float v) { return fabsf(v) <= FLT_MAX; }  // false for NaN and +-Inf

Status check_rate(float lr, float mu) {
  if (!finite(lr) || !finite(mu)) return Status::NonFinite;
  if (!(lr > 0.0f) || !(mu >= 0.0f)) return Status::BadValue;
  return Status::Ok;
}

}  // namespace

// ---- kernels ----

void head_logits(const float* w, const float* x1, uint16_t d, uint16_t k, float* z) {
  for_row_blocks(k, [=](auto rows, uint32_t j) {
    dot_rows<decltype(rows)::value>(w + j * (d + 1u), d, x1, z + j);
  });
}

float softmax_xent(float* z, uint16_t k, uint8_t y) {
  const float zy = z[y];
  float m;
  const float s = exp_shifted(z, k, &m);
  const float inv = 1.0f / s;
  for (uint32_t j = 0; j < k; ++j) z[j] *= inv;
  return logf(s) - (zy - m);
}

uint16_t head_argmax(const float* z, uint16_t k) {
  uint16_t best = 0;
  for (uint16_t j = 1; j < k; ++j)
    if (z[j] > z[best]) best = j;
  return best;
}

float head_step_stream(float* w, const float* w0, const float* x1, uint8_t y, float* z, const float* x1_next,
                       float* z_next, uint16_t d, uint16_t k, float lr, float mu) {
  const float zy = z[y];
  float m;
  const float s = exp_shifted(z, k, &m);
  const float loss = logf(s) - (zy - m);
  // z becomes the update coefficients -lr (p - onehot(y)), with p = exp / s.
  const float g = -lr / s;
  for (uint32_t j = 0; j < k; ++j) z[j] *= g;
  z[y] += lr;
  if (mu != 0.0f) prox_pull(w, w0, static_cast<size_t>(k) * (d + 1u), lr * mu);
  if (x1_next != nullptr)
    add_outer_then_logits(w, x1, d, k, z, x1_next, z_next);
  else
    add_outer(w, x1, d, k, z);
  return loss;
}

float head_step_one(float* w, const float* w0, const float* x1, uint8_t y, uint16_t d, uint16_t k, float lr,
                    float mu) {
  float z[kMaxClasses];
  head_logits(w, x1, d, k, z);
  return head_step_stream(w, w0, x1, y, z, nullptr, nullptr, d, k, lr, mu);
}

// ---- trainer ----

Status HeadTrainer::check_shape(uint16_t d, uint16_t k, const SampleSource& data) const {
  if (d == 0 || k == 0) return Status::BadValue;
  if (d > kMaxDim || k > kMaxClasses) return Status::TooLarge;
  const uint32_t n = data.size();
  if (n == 0) return Status::NoData;
  if (n > kCacheCapacity) return Status::TooLarge;
  for (uint32_t i = 0; i < n; ++i)
    if (data.label(i) >= k) return Status::BadValue;
  return Status::Ok;
}

void HeadTrainer::load_x(const SampleSource& data, uint32_t i, uint16_t d, float* x) const {
  data.embedding(i, x);
  x[d] = 1.0f;
}

float HeadTrainer::epoch_stream(float* w, const float* w0, uint16_t d, uint16_t k, const SampleSource& data,
                                const uint16_t* idx, uint32_t count, float lr, float mu) {
  float* x = x_[0];
  float* xn = x_[1];
  float* z = z_[0];
  float* zn = z_[1];
  load_x(data, idx[0], d, x);
  head_logits(w, x, d, k, z);
  float loss = 0.0f;
  for (uint32_t t = 0; t < count; ++t) {
    const uint8_t y = data.label(idx[t]);
    if (t + 1 < count) {
      load_x(data, idx[t + 1], d, xn);
      loss += head_step_stream(w, w0, x, y, z, xn, zn, d, k, lr, mu);
      float* tx = x;
      x = xn;
      xn = tx;
      float* tz = z;
      z = zn;
      zn = tz;
    } else {
      loss += head_step_stream(w, w0, x, y, z, nullptr, nullptr, d, k, lr, mu);
    }
  }
  return loss;
}

float HeadTrainer::batch_step(float* w, const float* w0, uint16_t d, uint16_t k, const SampleSource& data,
                              const uint16_t* idx, uint32_t count, float lr, float mu) {
  if (count == 1) return epoch_stream(w, w0, d, k, data, idx, 1, lr, mu);
  const size_t m = static_cast<size_t>(k) * (d + 1u);
  for (size_t i = 0; i < m; ++i) grad_[i] = 0.0f;
  float* x = x_[0];
  float* z = z_[0];
  float loss = 0.0f;
  for (uint32_t t = 0; t < count; ++t) {
    load_x(data, idx[t], d, x);
    const uint8_t y = data.label(idx[t]);
    head_logits(w, x, d, k, z);
    loss += softmax_xent(z, k, y);
    z[y] -= 1.0f;  // p - onehot(y)
    add_outer(grad_, x, d, k, z);
  }
  if (mu != 0.0f) prox_pull(w, w0, m, lr * mu);
  apply_gradient(w, grad_, m, -lr / static_cast<float>(count));
  return loss;
}

Status HeadTrainer::sgd_step(float* w, const float* w0, uint16_t d, uint16_t k, const SampleSource& data,
                             const uint16_t* idx, uint32_t count, float lr, float mu, float* loss_sum) {
  Status s = check_rate(lr, mu);
  if (s != Status::Ok) return s;
  s = check_shape(d, k, data);
  if (s != Status::Ok) return s;
  if (count == 0) return Status::BadValue;
  for (uint32_t t = 0; t < count; ++t)
    if (idx[t] >= data.size()) return Status::BadValue;
  const float loss = batch_step(w, w0, d, k, data, idx, count, lr, mu);
  if (loss_sum != nullptr) *loss_sum += loss;
  return Status::Ok;
}

Status HeadTrainer::train_local(const float* w0, float* w, uint16_t d, uint16_t k, const SampleSource& data,
                                const TrainConfig& cfg, Rng& rng, TrainResult* out) {
  Status s = check_rate(cfg.lr, cfg.prox_mu);
  if (s != Status::Ok) return s;
  if (!finite(cfg.clip_norm)) return Status::NonFinite;
  if (cfg.epochs == 0 || cfg.epochs > kMaxEpochs || cfg.batch_size == 0 || !(cfg.clip_norm >= 0.0f))
    return Status::BadValue;
  s = check_shape(d, k, data);
  if (s != Status::Ok) return s;
  const size_t m = static_cast<size_t>(k) * (d + 1u);
  for (size_t i = 0; i < m; ++i)
    if (!finite(w0[i])) return Status::NonFinite;

  const uint32_t n = data.size();
  memcpy(w, w0, m * sizeof(float));
  for (uint16_t e = 0; e < cfg.epochs; ++e) {
    for (uint32_t i = 0; i < n; ++i) order_[i] = static_cast<uint16_t>(i);
    shuffle(order_, n, rng);
    float loss = 0.0f;
    if (cfg.batch_size == 1) {
      // Batch size 1 streams: each step's pass over W also computes the next sample's logits.
      loss = epoch_stream(w, w0, d, k, data, order_, n, cfg.lr, cfg.prox_mu);
    } else {
      for (uint32_t b = 0; b < n; b += cfg.batch_size) {
        const uint32_t count = n - b < cfg.batch_size ? n - b : cfg.batch_size;
        loss += batch_step(w, w0, d, k, data, order_ + b, count, cfg.lr, cfg.prox_mu);
      }
    }
    out->epoch_loss[e] = loss / static_cast<float>(n);
  }
  s = accuracy(w, d, k, data, &out->accuracy);
  if (s != Status::Ok) return s;

  float sumsq = 0.0f;
  for (size_t i = 0; i < m; ++i) {
    w[i] -= w0[i];
    sumsq += w[i] * w[i];
  }
  const float norm = sqrtf(sumsq);
  if (!finite(norm)) return Status::NonFinite;
  if (cfg.clip_norm > 0.0f && norm > cfg.clip_norm) {
    const float f = cfg.clip_norm / norm;
    for (size_t i = 0; i < m; ++i) w[i] *= f;
  }
  out->n_samples = n;
  out->epochs = cfg.epochs;
  out->update_norm = norm;
  return Status::Ok;
}

Status HeadTrainer::accuracy(const float* w, uint16_t d, uint16_t k, const SampleSource& data, float* out) {
  const Status s = check_shape(d, k, data);
  if (s != Status::Ok) return s;
  const uint32_t n = data.size();
  uint32_t hits = 0;
  for (uint32_t i = 0; i < n; ++i) {
    load_x(data, i, d, x_[0]);
    head_logits(w, x_[0], d, k, z_[0]);
    if (head_argmax(z_[0], k) == data.label(i)) ++hits;
  }
  *out = static_cast<float>(hits) / static_cast<float>(n);
  return Status::Ok;
}

Status HeadTrainer::mean_loss(const float* w, uint16_t d, uint16_t k, const SampleSource& data, float* out) {
  const Status s = check_shape(d, k, data);
  if (s != Status::Ok) return s;
  const uint32_t n = data.size();
  float loss = 0.0f;
  for (uint32_t i = 0; i < n; ++i) {
    load_x(data, i, d, x_[0]);
    head_logits(w, x_[0], d, k, z_[0]);
    loss += softmax_xent(z_[0], k, data.label(i));
  }
  *out = loss / static_cast<float>(n);
  return Status::Ok;
}

}  // namespace tinyfl
