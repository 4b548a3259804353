// The head trainer against the numpy reference (testvectors/head/), plus its kernels against a
// naive double-precision model, clipping, convergence and configuration checks.
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../check.h"
#include "../vectors.h"
#include "tinyfl/head.h"
#include "tinyfl/rng.h"

using namespace tinyfl;

namespace {




// Samples held in plain arrays (the node uses its embedding cache).
class ArraySource final : public SampleSource {
 public:
  void set(const float* x, const uint8_t* y, uint32_t n, uint16_t d) {
    x_ = x;
    y_ = y;
    n_ = n;
    d_ = d;
  }
  uint32_t size() const override { return n_; }
  uint8_t label(uint32_t i) const override { return y_[i]; }
  void embedding(uint32_t i, float* x) const override { memcpy(x, x_ + static_cast<size_t>(i) * d_, d_ * 4u); }

 private:
  const float* x_ = nullptr;
  const uint8_t* y_ = nullptr;
  uint32_t n_ = 0;
  uint16_t d_ = 0;
};

constexpr uint32_t kMaxSamples = 128;
Vectors g_vec;
HeadTrainer g_trainer;
float g_w[kHeadValues], g_w0[kHeadValues], g_expect[kHeadValues], g_ref[kHeadValues];
float g_x[kMaxSamples * kMaxDim];
uint8_t g_y[kMaxSamples];

uint32_t bits_of(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

void copy_f32(const Array& a, uint32_t first, uint32_t n, float* out) {
  for (uint32_t i = 0; i < n; ++i) out[i] = a.f32(first + i);
}

// Max over values of |a - b| / max(1, |b|) (the CHECK_NEAR measure).
double max_err(const float* a, const float* b, size_t n) {
  double worst = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const double lim = fabs(b[i]) > 1.0 ? fabs(b[i]) : 1.0;
    worst = fmax(worst, fabs(static_cast<double>(a[i]) - b[i]) / lim);
  }
  return worst;
}

// Fills n samples of d uniform values in [-1, 1) and labels < k.
void fill_samples(Rng& rng, uint32_t n, uint16_t d, uint16_t k) {
  for (uint32_t i = 0; i < n * d; ++i) g_x[i] = 2.0f * rng.uniform01() - 1.0f;
  for (uint32_t i = 0; i < n; ++i) g_y[i] = static_cast<uint8_t>(rng.next() % k);
}

const char* const kSgdFiles[] = {
    "head/sgd_d64_k6_b4_mu0.bin",  "head/sgd_d64_k6_b1_mu01.bin", "head/sgd_d7_k3_b5_mu0.bin",
    "head/sgd_d7_k3_b2_mu05.bin", "head/sgd_d13_k7_b3_mu0.bin",
};
const char* const kTrainFiles[] = {
    "head/train_d64_k6_b8.bin",
    "head/train_d64_k6_b5_prox.bin",
    "head/train_d7_k3_b1_clip.bin",
    "head/train_sep_d16_k4_b4.bin",
};

struct TrainCase {
  uint16_t d, k;
  uint32_t n;
  TrainConfig cfg;
  uint32_t seed, round_id;
  uint8_t node_id[40];
  size_t node_id_len;
};

// Loads a train_*.bin into g_x, g_y, g_w0 and returns its shapes and config.
TrainCase load_train(const char* file) {
  TrainCase c{};
  CHECK(g_vec.load(file));
  const Array x = g_vec.get("x"), y = g_vec.get("y"), w0 = g_vec.get("w0"), id = g_vec.get("node_id");
  c.n = x.dims[0];
  c.d = static_cast<uint16_t>(x.dims[1]);
  c.k = static_cast<uint16_t>(w0.dims[0]);
  CHECK(c.n <= kMaxSamples && c.d <= kMaxDim && c.k <= kMaxClasses);
  copy_f32(x, 0, x.count, g_x);
  for (uint32_t i = 0; i < c.n; ++i) g_y[i] = y.u8(i);
  copy_f32(w0, 0, w0.count, g_w0);
  c.cfg.epochs = g_vec.get("epochs").u16();
  c.cfg.batch_size = g_vec.get("batch_size").u16();
  c.cfg.lr = g_vec.get("lr").f32();
  c.cfg.prox_mu = g_vec.get("mu").f32();
  c.cfg.clip_norm = g_vec.get("clip").f32();
  c.seed = g_vec.get("seed").u32();
  c.round_id = g_vec.get("round_id").u32();
  c.node_id_len = id.count;
  memcpy(c.node_id, id.data, id.count);
  return c;
}

}  // namespace

// ---- against the numpy reference ----

TINYFL_TEST(sgd_steps_match_reference) {
  double worst = 0.0;
  for (const char* file : kSgdFiles) {
    CHECK(g_vec.load(file));
    const uint16_t d = g_vec.get("d").u16(), k = g_vec.get("k").u16();
    const float lr = g_vec.get("lr").f32(), mu = g_vec.get("mu").f32();
    const Array x = g_vec.get("x"), y = g_vec.get("y"), loss = g_vec.get("loss_sum"), after = g_vec.get("w_after");
    const uint32_t steps = x.dims[0], batch = x.dims[1];
    const size_t m = static_cast<size_t>(k) * (d + 1u);
    copy_f32(g_vec.get("w_init"), 0, static_cast<uint32_t>(m), g_w);
    copy_f32(g_vec.get("w0"), 0, static_cast<uint32_t>(m), g_w0);
    for (uint32_t s = 0; s < steps; ++s) {
      copy_f32(x, s * batch * d, batch * d, g_x);
      for (uint32_t b = 0; b < batch; ++b) g_y[b] = y.u8(s * batch + b);
      ArraySource src;
      src.set(g_x, g_y, batch, d);
      uint16_t idx[8];
      for (uint16_t b = 0; b < batch; ++b) idx[b] = b;
      float loss_sum = 0.0f;
      CHECK(g_trainer.sgd_step(g_w, g_w0, d, k, src, idx, batch, lr, mu, &loss_sum) == Status::Ok);
      CHECK_NEAR(loss_sum, loss.f32(s), 1e-5);
      copy_f32(after, static_cast<uint32_t>(s * m), static_cast<uint32_t>(m), g_expect);
      const double err = max_err(g_w, g_expect, m);
      worst = fmax(worst, err);
      if (!(err <= 1e-5)) printf("  %s step %u: max rel err %.3g\n", file, s, err);
      CHECK(err <= 1e-5);
    }
  }
  printf("  sgd steps: largest deviation from the reference %.2g (limit 1e-5)\n", worst);
}

TINYFL_TEST(train_local_matches_reference_round) {
  for (const char* file : kTrainFiles) {
    const TrainCase c = load_train(file);
    ArraySource src;
    src.set(g_x, g_y, c.n, c.d);
    Rng rng = round_rng(c.seed, c.node_id, c.node_id_len, c.round_id);
    CHECK_EQ(rng.state(), g_vec.get("rng_state_initial").u32());

    // Every epoch's visiting order, replayed with the same generator.
    const Array orders = g_vec.get("orders");
    Rng replay = rng;
    static uint16_t order[kMaxSamples];
    for (uint16_t e = 0; e < c.cfg.epochs; ++e) {
      for (uint16_t i = 0; i < c.n; ++i) order[i] = i;
      shuffle(order, c.n, replay);
      for (uint32_t i = 0; i < c.n; ++i) CHECK_EQ(order[i], orders.u16(e * c.n + i));
    }

    TrainResult r{};
    CHECK(g_trainer.train_local(g_w0, g_w, c.d, c.k, src, c.cfg, rng, &r) == Status::Ok);
    CHECK_EQ(rng.state(), g_vec.get("rng_state_after").u32());
    CHECK_EQ(rng.state(), replay.state());
    for (uint32_t i = 0; i < c.n; ++i) CHECK_EQ(g_trainer.order()[i], orders.u16((c.cfg.epochs - 1u) * c.n + i));
    CHECK_EQ(r.n_samples, c.n);
    CHECK_EQ(r.epochs, c.cfg.epochs);
    const Array loss = g_vec.get("epoch_loss");
    for (uint16_t e = 0; e < c.cfg.epochs; ++e) CHECK_NEAR(r.epoch_loss[e], loss.f32(e), 1e-4);
    CHECK_EQ(bits_of(r.accuracy), bits_of(g_vec.get("accuracy").f32()));
    CHECK_NEAR(r.update_norm, g_vec.get("update_norm").f32(), 1e-4);
    const size_t m = static_cast<size_t>(c.k) * (c.d + 1u);
    copy_f32(g_vec.get("delta"), 0, static_cast<uint32_t>(m), g_expect);
    const double err = max_err(g_w, g_expect, m);
    printf("  %s: delta deviation %.2g (limit 1e-4)\n", file, err);
    CHECK(err <= 1e-4);
  }
}

TINYFL_TEST(loss_falls_every_epoch_on_separable_data) {
  const TrainCase c = load_train("head/train_sep_d16_k4_b4.bin");
  ArraySource src;
  src.set(g_x, g_y, c.n, c.d);
  Rng rng(1);
  TrainResult r{};
  CHECK(g_trainer.train_local(g_w0, g_w, c.d, c.k, src, c.cfg, rng, &r) == Status::Ok);
  for (uint16_t e = 1; e < r.epochs; ++e) CHECK(r.epoch_loss[e] < r.epoch_loss[e - 1]);
  CHECK(r.epoch_loss[r.epochs - 1] < 0.25f * r.epoch_loss[0]);
  CHECK(r.accuracy == 1.0f);
  // The trained head (W0 + delta) is what the accuracy was measured on.
  for (size_t i = 0; i < static_cast<size_t>(c.k) * (c.d + 1u); ++i) g_w[i] += g_w0[i];
  float acc = 0.0f, loss = 0.0f;
  CHECK(g_trainer.accuracy(g_w, c.d, c.k, src, &acc) == Status::Ok);
  CHECK(g_trainer.mean_loss(g_w, c.d, c.k, src, &loss) == Status::Ok);
  CHECK(acc == 1.0f);
  CHECK(loss < r.epoch_loss[r.epochs - 1]);
}

TINYFL_TEST(clipping_bounds_the_update_norm) {
  const TrainCase c = load_train("head/train_d64_k6_b8.bin");
  ArraySource src;
  src.set(g_x, g_y, c.n, c.d);
  const size_t m = static_cast<size_t>(c.k) * (c.d + 1u);
  TrainConfig cfg = c.cfg;
  cfg.clip_norm = 0.0f;
  Rng a(77);
  TrainResult free_run{};
  CHECK(g_trainer.train_local(g_w0, g_ref, c.d, c.k, src, cfg, a, &free_run) == Status::Ok);
  cfg.clip_norm = 0.25f * free_run.update_norm;
  Rng b(77);
  TrainResult clipped{};
  CHECK(g_trainer.train_local(g_w0, g_w, c.d, c.k, src, cfg, b, &clipped) == Status::Ok);
  CHECK(bits_of(clipped.update_norm) == bits_of(free_run.update_norm));  // reported before clipping
  double sumsq = 0.0;
  for (size_t i = 0; i < m; ++i) sumsq += static_cast<double>(g_w[i]) * g_w[i];
  CHECK(sqrt(sumsq) <= cfg.clip_norm * (1.0 + 1e-5));
  CHECK(sqrt(sumsq) >= cfg.clip_norm * (1.0 - 1e-5));
  const float f = cfg.clip_norm / free_run.update_norm;
  for (size_t i = 0; i < m; ++i) CHECK_EQ(bits_of(g_w[i]), bits_of(g_ref[i] * f));  // same direction
  // A bound above the norm leaves the delta alone.
  cfg.clip_norm = 2.0f * free_run.update_norm;
  Rng c2(77);
  CHECK(g_trainer.train_local(g_w0, g_w, c.d, c.k, src, cfg, c2, &clipped) == Status::Ok);
  for (size_t i = 0; i < m; ++i) CHECK_EQ(bits_of(g_w[i]), bits_of(g_ref[i]));
}

// ---- kernels against a naive double model ----

namespace {

void naive_logits(const float* w, const float* x1, uint16_t d, uint16_t k, double* z) {
  for (uint16_t j = 0; j < k; ++j) {
    z[j] = 0.0;
    for (uint16_t i = 0; i <= d; ++i) z[j] += static_cast<double>(w[j * (d + 1) + i]) * x1[i];
  }
}

}  // namespace

TINYFL_TEST(kernels_match_naive_model_for_every_shape) {
  Rng rng(4242);
  float x1[kMaxDim + 1], z[kMaxClasses], w[kHeadValues], w0[kHeadValues];
  double zr[kMaxClasses];
  const uint16_t dims[] = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64};
  for (uint16_t d : dims) {
    for (uint16_t k = 1; k <= kMaxClasses; ++k) {
      const size_t m = static_cast<size_t>(k) * (d + 1u);
      for (size_t i = 0; i < m; ++i) {
        w[i] = rng.uniform01() - 0.5f;
        w0[i] = w[i] + 0.1f * (rng.uniform01() - 0.5f);
        g_ref[i] = w[i];
      }
      for (uint16_t i = 0; i < d; ++i) x1[i] = 2.0f * rng.uniform01() - 1.0f;
      x1[d] = 1.0f;
      head_logits(w, x1, d, k, z);
      naive_logits(w, x1, d, k, zr);
      for (uint16_t j = 0; j < k; ++j) CHECK_NEAR(z[j], zr[j], 1e-5);

      // One step with the prox term, against the formula in double.
      const uint8_t y = static_cast<uint8_t>(rng.next() % k);
      const float lr = 0.1f, mu = 0.3f;
      double mx = zr[0], s = 0.0, p[kMaxClasses];
      for (uint16_t j = 1; j < k; ++j) mx = fmax(mx, zr[j]);
      for (uint16_t j = 0; j < k; ++j) s += (p[j] = exp(zr[j] - mx));
      const float loss = head_step_one(w, w0, x1, y, d, k, lr, mu);
      CHECK_NEAR(loss, log(s) - (zr[y] - mx), 1e-5);
      for (uint16_t j = 0; j < k; ++j) {
        const double e = p[j] / s - (j == y ? 1.0 : 0.0);
        for (uint16_t i = 0; i <= d; ++i) {
          const size_t at = j * (d + 1u) + i;
          const double want = g_ref[at] - lr * (e * x1[i] + mu * (static_cast<double>(g_ref[at]) - w0[at]));
          CHECK_NEAR(w[at], want, 1e-5);
        }
      }
    }
  }
}

TINYFL_TEST(streaming_steps_equal_two_pass_steps_exactly) {
  // head_step_stream folds the next sample's forward pass into this step's update pass; the
  // values must be the very same floats as head_logits after head_step_one.
  Rng rng(9);
  const uint16_t shapes[][2] = {{64, 6}, {7, 3}, {13, 7}, {64, 8}, {64, 5}, {5, 1}, {16, 2}};
  for (const auto& shape : shapes) {
    const uint16_t d = shape[0], k = shape[1];
    const size_t m = static_cast<size_t>(k) * (d + 1u);
    for (size_t i = 0; i < m; ++i) {
      g_w[i] = g_ref[i] = 0.2f * (rng.uniform01() - 0.5f);
      g_w0[i] = 0.0f;
    }
    constexpr uint32_t kSteps = 20;
    static float xs[kSteps][kMaxDim + 1];
    uint8_t ys[kSteps];
    for (uint32_t t = 0; t < kSteps; ++t) {
      for (uint16_t i = 0; i < d; ++i) xs[t][i] = 2.0f * rng.uniform01() - 1.0f;
      xs[t][d] = 1.0f;
      ys[t] = static_cast<uint8_t>(rng.next() % k);
    }
    const float mus[] = {0.0f, 0.05f};
    for (float mu : mus) {
      float z[kMaxClasses], zn[kMaxClasses], check[kMaxClasses];
      head_logits(g_w, xs[0], d, k, z);
      for (uint32_t t = 0; t < kSteps; ++t) {
        const bool more = t + 1 < kSteps;
        const float a = head_step_stream(g_w, g_w0, xs[t], ys[t], z, more ? xs[t + 1] : nullptr, zn, d, k, 0.05f, mu);
        const float b = head_step_one(g_ref, g_w0, xs[t], ys[t], d, k, 0.05f, mu);
        CHECK_EQ(bits_of(a), bits_of(b));
        if (more) {
          head_logits(g_ref, xs[t + 1], d, k, check);
          for (uint16_t j = 0; j < k; ++j) CHECK_EQ(bits_of(zn[j]), bits_of(check[j]));
          memcpy(z, zn, sizeof z);
        }
      }
      for (size_t i = 0; i < m; ++i) CHECK_EQ(bits_of(g_w[i]), bits_of(g_ref[i]));
    }
  }
}

TINYFL_TEST(softmax_is_stable_and_argmax_takes_the_lowest_tie) {
  float z[3] = {1000.0f, 0.0f, -1000.0f};
  const float loss0 = softmax_xent(z, 3, 0);
  CHECK(loss0 >= 0.0f && loss0 < 1e-6f);
  CHECK_NEAR(z[0] + z[1] + z[2], 1.0, 1e-6);
  float z2[3] = {1000.0f, 0.0f, -1000.0f};
  CHECK_NEAR(softmax_xent(z2, 3, 2), 2000.0, 1e-3);
  float ties[4] = {0.5f, 2.0f, 2.0f, -1.0f};
  CHECK_EQ(head_argmax(ties, 4), 1);
  float flat[3] = {0.0f, 0.0f, 0.0f};
  CHECK_EQ(head_argmax(flat, 3), 0);
  CHECK_NEAR(softmax_xent(flat, 3, 1), log(3.0), 1e-6);
}

TINYFL_TEST(accuracy_of_a_zero_head_is_the_share_of_class_zero) {
  Rng rng(3);
  fill_samples(rng, 50, 8, 4);
  ArraySource src;
  src.set(g_x, g_y, 50, 8);
  memset(g_w, 0, sizeof g_w);
  uint32_t zeros = 0;
  for (uint32_t i = 0; i < 50; ++i) zeros += g_y[i] == 0;
  float acc = -1.0f;
  CHECK(g_trainer.accuracy(g_w, 8, 4, src, &acc) == Status::Ok);
  CHECK(acc == static_cast<float>(zeros) / 50.0f);
}

// ---- configuration checks ----

TINYFL_TEST(bad_configuration_is_rejected_before_training) {
  Rng data(5);
  fill_samples(data, 10, 4, 3);
  ArraySource src;
  src.set(g_x, g_y, 10, 4);
  for (size_t i = 0; i < 15; ++i) g_w0[i] = 0.01f * static_cast<float>(i);
  const TrainConfig good{2, 3, 0.1f, 0.0f, 0.0f};
  TrainResult r{};
  Rng rng(1);
  CHECK(g_trainer.train_local(g_w0, g_w, 4, 3, src, good, rng, &r) == Status::Ok);

  struct Bad {
    TrainConfig cfg;
    Status want;
  };
  const Bad bad[] = {
      {{0, 3, 0.1f, 0.0f, 0.0f}, Status::BadValue},
      {{static_cast<uint16_t>(kMaxEpochs + 1), 3, 0.1f, 0.0f, 0.0f}, Status::BadValue},
      {{2, 0, 0.1f, 0.0f, 0.0f}, Status::BadValue},
      {{2, 3, 0.0f, 0.0f, 0.0f}, Status::BadValue},
      {{2, 3, -0.1f, 0.0f, 0.0f}, Status::BadValue},
      {{2, 3, NAN, 0.0f, 0.0f}, Status::NonFinite},
      {{2, 3, INFINITY, 0.0f, 0.0f}, Status::NonFinite},
      {{2, 3, 0.1f, -0.5f, 0.0f}, Status::BadValue},
      {{2, 3, 0.1f, NAN, 0.0f}, Status::NonFinite},
      {{2, 3, 0.1f, 0.0f, -1.0f}, Status::BadValue},
      {{2, 3, 0.1f, 0.0f, INFINITY}, Status::NonFinite},
  };
  for (const Bad& b : bad) {
    Rng r2(1);
    for (size_t i = 0; i < 15; ++i) g_w[i] = -7.0f;
    CHECK(g_trainer.train_local(g_w0, g_w, 4, 3, src, b.cfg, r2, &r) == b.want);
    CHECK_EQ(r2.state(), 1u);  // nothing drawn
    CHECK(g_w[0] == -7.0f);    // nothing written
  }
  Rng r3(1);
  CHECK(g_trainer.train_local(g_w0, g_w, 0, 3, src, good, r3, &r) == Status::BadValue);
  CHECK(g_trainer.train_local(g_w0, g_w, 4, 0, src, good, r3, &r) == Status::BadValue);
  CHECK(g_trainer.train_local(g_w0, g_w, kMaxDim + 1, 3, src, good, r3, &r) == Status::TooLarge);
  CHECK(g_trainer.train_local(g_w0, g_w, 4, kMaxClasses + 1, src, good, r3, &r) == Status::TooLarge);
  CHECK(g_trainer.train_local(g_w0, g_w, 4, 2, src, good, r3, &r) == Status::BadValue);  // a label is 2
  ArraySource empty;
  empty.set(g_x, g_y, 0, 4);
  CHECK(g_trainer.train_local(g_w0, g_w, 4, 3, empty, good, r3, &r) == Status::NoData);
  ArraySource too_many;
  too_many.set(g_x, g_y, kCacheCapacity + 1, 4);
  CHECK(g_trainer.train_local(g_w0, g_w, 4, 3, too_many, good, r3, &r) == Status::TooLarge);
  CHECK_EQ(r3.state(), 1u);

  uint16_t idx[2] = {0, 10};
  float loss = 0.0f;
  CHECK(g_trainer.sgd_step(g_w, g_w0, 4, 3, src, idx, 2, 0.1f, 0.0f, &loss) == Status::BadValue);
  CHECK(g_trainer.sgd_step(g_w, g_w0, 4, 3, src, idx, 0, 0.1f, 0.0f, &loss) == Status::BadValue);
  CHECK(g_trainer.sgd_step(g_w, g_w0, 4, 3, src, idx, 1, 0.0f, 0.0f, &loss) == Status::BadValue);
}

TINYFL_TEST(non_finite_global_head_or_divergence_is_detected) {
  // The node also checks the decoded GLOBAL head (node.cpp); the trainer checks again because it
  // is callable on its own.
  Rng data(6);
  fill_samples(data, 10, 4, 3);
  ArraySource src;
  src.set(g_x, g_y, 10, 4);
  const TrainConfig cfg{1, 2, 0.1f, 0.0f, 0.0f};
  TrainResult r{};
  const float bads[] = {NAN, INFINITY, -INFINITY};
  for (float bad : bads) {
    for (size_t i = 0; i < 15; ++i) g_w0[i] = 0.0f;
    g_w0[7] = bad;
    Rng rng(1);
    CHECK(g_trainer.train_local(g_w0, g_w, 4, 3, src, cfg, rng, &r) == Status::NonFinite);
    CHECK_EQ(rng.state(), 1u);
  }
  // A learning rate that overflows the weights: the result is reported, not sent.
  for (size_t i = 0; i < 40; ++i) g_x[i] *= 1e20f;
  for (size_t i = 0; i < 15; ++i) g_w0[i] = 1e15f;
  const TrainConfig wild{3, 1, 1e30f, 0.0f, 0.0f};
  Rng rng(1);
  CHECK(g_trainer.train_local(g_w0, g_w, 4, 3, src, wild, rng, &r) == Status::NonFinite);
}

TINYFL_TEST(trainer_memory_is_fixed_and_reported) {
  static_assert(HeadTrainer::working_bytes() == sizeof(HeadTrainer), "working bytes");
  CHECK(HeadTrainer::working_bytes() >= sizeof(float) * kHeadValues + sizeof(uint16_t) * kCacheCapacity);
  printf("  HeadTrainer holds %u bytes\n", static_cast<unsigned>(HeadTrainer::working_bytes()));
}

int main() { return tinyfl_test::run_all(); }
