// liquid_scan CPU kernels: argument checking, per-thread workspace, entry points.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>

#include <optional>
#include <tuple>

#include "liquid_chunk.h"

namespace lm {

struct ScanArgs {
  int64_t B = 0, H = 0, T = 0, BH = 0;
  int d = 0;
  bool reverse = false, precision_safe = false;
};

// Validates shapes/dtypes/devices with messages that say what to do; returns the sizes.
ScanArgs check_scan_args(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& log_a,
                         const std::optional<at::Tensor>& initial_state, bool reverse, bool precision_safe);

// The operand as the kernels address it: any strides with a contiguous channel dim (else a contiguous copy).
at::Tensor channel_contiguous(const at::Tensor& t);
Rows rows_of(const at::Tensor& t);
// True when q keeps heads inside time ([B, T, H, d] memory seen as [B, H, T, d]): outputs then take that
// layout too, so the caller merges heads with a free view. ops/cpp.py's fake kernels mirror this rule.
bool heads_inner(const at::Tensor& q);
// An uninitialised [B, H, T, d] tensor in q's layout family (see heads_inner) with the given dtype.
at::Tensor empty_in_layout(const at::Tensor& q, at::ScalarType dtype);

// Calls f(scalar_t{}) for the supported input dtypes (fp32, bf16, fp16).
template <typename F>
static inline void LM_DISPATCH(at::ScalarType t, F&& f) {
  switch (t) {
    case at::kFloat: f(float{}); break;
    case at::kBFloat16: f(c10::BFloat16{}); break;
    case at::kHalf: f(c10::Half{}); break;
    default: TORCH_CHECK(false, "liquid_scan (cpp): unsupported dtype ", t, "; use float32, bfloat16 or float16");
  }
}

// Ask for transparent huge pages on a large freshly allocated output before it is first touched:
// a 32 MB output otherwise costs ~8K page faults per call (measured ~10% of the forward at T=8192).
// Best effort (Linux, THP in "madvise" mode); no effect on results.
void advise_huge_pages(const at::Tensor& t);

// d x d fp32 state <-> padded dp x dp working copy (true state = S - comp).
static inline void load_state(const float* src, int d, int dp, float* S) {
  std::fill(S, S + dp * dp, 0.0f);
  if (!src) return;
  for (int c = 0; c < d; ++c)
    for (int m = 0; m < d; ++m) S[c * dp + m] = src[c * d + m];
}
static inline void store_state(const float* S, const float* comp, int d, int dp, float* dst) {
  for (int c = 0; c < d; ++c)
    for (int m = 0; m < d; ++m) dst[c * d + m] = S[c * dp + m] - comp[c * dp + m];
}

// Per-thread buffers for one chunk (allocated once per thread per call).
struct Workspace {
  int dp;
  ChunkDecay dec;
  std::vector<float> Q, K, V, LA;  // [CH][dp] chunk inputs in fp32
  std::vector<float> Qe, Qt, Kt;   // q*exp(l), q*exp(g), k*exp(g_L - g)   [CH][dp]
  std::vector<float> Ke;           // k*exp(rl)                              [CH][dp]
  std::vector<float> KeT, KhT;     // Ke^T and its w-scaled copy             [dp][CH]
  std::vector<float> A;            // [CH][CH] intra-chunk matrix (lower triangle)
  std::vector<float> O;            // [CH][dp]
  std::vector<float> U;            // [dp][dp]
  std::vector<float> acc;          // [dp]
  // current chunk rows: point into the inputs/outputs directly when possible, else into Q, K, V, LA, O
  const float *q_ = nullptr, *k_ = nullptr, *v_ = nullptr, *la_ = nullptr;
  float* o_ = nullptr;

  explicit Workspace(int dp_);
  void prepare(int L, bool full);
  void prepare_queries(int L);
  void intra_offdiag(int I);
  void intra_diag(int I);
  void chunk_forward(int L, float* S, float* comp, bool precision_safe, bool outputs);
  void chunk_outputs(int L, const float* S);
  void chunk_state(int L, float* S, float* comp, bool precision_safe);
};

std::tuple<at::Tensor, at::Tensor> liquid_scan_fwd(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                   const at::Tensor& log_a,
                                                   const std::optional<at::Tensor>& initial_state, bool reverse,
                                                   bool precision_safe);

// Inference read-out fused into the scan (no autograd): o_t = RMSNorm_h(S_t^T q_t) * w_h with the norm's
// eps (the caller folds the 1/sqrt(d) query scale into eps: RMSNorm(s o) = o / sqrt(mean(o^2) + eps/s^2)),
// or o_t = out_scale * S_t^T q_t without a weight. Same layouts as liquid_scan_fwd.
struct Epilogue {
  bool active = false;
  const float* weight = nullptr;
  float eps = 1e-5f, scale = 1.0f;
};
std::tuple<at::Tensor, at::Tensor> liquid_scan_fwd_normed(const at::Tensor& q, const at::Tensor& k,
                                                          const at::Tensor& v, const at::Tensor& log_a,
                                                          const std::optional<at::Tensor>& initial_state,
                                                          bool reverse, bool precision_safe,
                                                          const std::optional<at::Tensor>& norm_weight, double eps,
                                                          double out_scale);

// Forward only (inference), G = H / Hkv query heads per KV head: q [B, H, T, d]; k, v, log_a [B, Hkv, T, d];
// initial_state [B, Hkv, d, d]. Query head h reads KV head h / G. Returns (o [B, H, T, d], final [B, Hkv, d, d]).
std::tuple<at::Tensor, at::Tensor> liquid_scan_fwd_grouped(const at::Tensor& q, const at::Tensor& k,
                                                           const at::Tensor& v, const at::Tensor& log_a,
                                                           const std::optional<at::Tensor>& initial_state,
                                                           bool precision_safe);

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> liquid_scan_bwd(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& log_a,
    const std::optional<at::Tensor>& initial_state, const at::Tensor& grad_o,
    const std::optional<at::Tensor>& grad_final_state, bool reverse, bool precision_safe);

at::Tensor liquid_step_(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& log_a,
                        at::Tensor& state);

}  // namespace lm
