// The linearized hybrid's one-token decode step as one op (the math of src/liquid_memory/hf/decode_step.py's
// decode_core, which stays the reference): at SmolLM2's size the step's cost was the ~70 small tensor ops per
// layer, not their arithmetic. fp32 only; the caller falls back to the reference for any other dtype.
//
// Per row b and KV head: the low-rank decay of the new token, the exact softmax over the sinks and the W window
// keys with the liquid mass as one more "key" (one shared normaliser), the state read before the oldest window
// key enters it, that key entering the state (in place), and the held window shifted by one (in place).
#include "hybrid_decode.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "liquid_simd.h"

namespace lm {
namespace {

constexpr float TINY = 1e-30f;  // hybrid.py's floor of the liquid denominator inside ln()

float dot(const float* a, const float* b, int n) {
  int i = 0;
  float s = 0.0f;
  if (n >= VL) {
    v8 acc = bc(0.0f);
    for (; i + VL <= n; i += VL) acc += ld(a + i) * ld(b + i);
    s = hsum(acc);
  }
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// phi = [softmax(x W), softmax(-x W)] (params.feature_map) for one vector x [d], W [d, d] row-major.
void feature_map(const float* x, const float* W, int d, float* phi, float* z) {
  for (int m = 0; m < d; ++m) z[m] = 0.0f;
  for (int i = 0; i < d; ++i) {
    const float xi = x[i];
    const float* row = W + int64_t(i) * d;
    for (int m = 0; m < d; ++m) z[m] += xi * row[m];
  }
  float hi = -std::numeric_limits<float>::infinity(), lo = std::numeric_limits<float>::infinity();
  for (int m = 0; m < d; ++m) hi = std::max(hi, z[m]), lo = std::min(lo, z[m]);
  float sp = 0.0f, sn = 0.0f;
  for (int m = 0; m < d; ++m) {
    phi[m] = std::exp(z[m] - hi);
    phi[d + m] = std::exp(lo - z[m]);
    sp += phi[m];
    sn += phi[d + m];
  }
  const float ip = 1.0f / sp, in = 1.0f / sn;
  for (int m = 0; m < d; ++m) phi[m] *= ip, phi[d + m] *= in;
}

float softplus(float x) { return x > 20.0f ? x : std::log1p(std::exp(x)); }  // torch's default threshold

void check_f32(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.scalar_type() == at::kFloat && t.device().is_cpu(), "hybrid_decode (cpp): ", name,
              " must be a float32 CPU tensor, got ", t.scalar_type(), " on ", t.device());
}

}  // namespace

at::Tensor hybrid_decode_(const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in,
                          const at::Tensor& hidden_in, at::Tensor& held_keys, at::Tensor& held_packed,
                          const std::optional<at::Tensor>& sink_keys_in,
                          const std::optional<at::Tensor>& sink_values_in, at::Tensor& state,
                          const std::optional<at::Tensor>& valid_in, const at::Tensor& feature_q_in,
                          const at::Tensor& feature_k_in, const at::Tensor& down_in, const at::Tensor& up_in,
                          const at::Tensor& bias_in, const at::Tensor& beta_in, double scaling, double delta_min) {
  TORCH_CHECK(q_in.dim() == 4 && q_in.size(2) == 1, "hybrid_decode (cpp): q must be [B, H, 1, d], got ",
              q_in.sizes());
  const int64_t B = q_in.size(0), H = q_in.size(1);
  const int d = static_cast<int>(q_in.size(3)), D = 2 * d;
  TORCH_CHECK(k_in.dim() == 4 && k_in.size(0) == B && k_in.size(2) == 1 && k_in.size(3) == d,
              "hybrid_decode (cpp): k must be [B, Hkv, 1, d], got ", k_in.sizes());
  const int64_t Hkv = k_in.size(1);
  TORCH_CHECK(Hkv > 0 && H % Hkv == 0, "hybrid_decode (cpp): query heads ", H, " not a multiple of KV heads ", Hkv);
  const int64_t G = H / Hkv;
  TORCH_CHECK(v_in.sizes() == k_in.sizes(), "hybrid_decode (cpp): v must be shaped like k, got ", v_in.sizes());
  TORCH_CHECK(held_keys.dim() == 4 && held_keys.size(0) == B && held_keys.size(1) == Hkv && held_keys.size(3) == d &&
                  held_keys.size(2) >= 1 && held_keys.is_contiguous(),
              "hybrid_decode (cpp): held_keys must be contiguous [B, Hkv, W - 1 >= 1, d], got ", held_keys.sizes());
  const int64_t held = held_keys.size(2), W = held + 1;
  TORCH_CHECK(held_packed.dim() == 4 && held_packed.size(0) == B && held_packed.size(1) == Hkv &&
                  held_packed.size(2) == held && held_packed.size(3) == d + D && held_packed.is_contiguous(),
              "hybrid_decode (cpp): held_packed must be contiguous [B, Hkv, W - 1, 3d], got ", held_packed.sizes());
  TORCH_CHECK(state.dim() == 4 && state.size(0) == B && state.size(1) == Hkv && state.size(2) == D &&
                  state.size(3) == D && state.is_contiguous(),
              "hybrid_decode (cpp): state must be contiguous [B, Hkv, 2d, 2d], got ", state.sizes());
  const int64_t hidden_dim = hidden_in.size(-1);
  TORCH_CHECK(hidden_in.numel() == B * hidden_dim, "hybrid_decode (cpp): hidden must be [B, 1, hidden]");
  const int64_t R = down_in.size(0);
  TORCH_CHECK(down_in.dim() == 2 && down_in.size(1) == hidden_dim && up_in.dim() == 2 && up_in.size(0) == Hkv * D &&
                  up_in.size(1) == R && bias_in.numel() == Hkv * D,
              "hybrid_decode (cpp): decay factors must be down [R, hidden], up [Hkv 2d, R], bias [Hkv 2d]");
  TORCH_CHECK(feature_q_in.numel() == H * d * d && feature_k_in.numel() == Hkv * d * d,
              "hybrid_decode (cpp): feature maps must be [H, d, d] and [Hkv, d, d]");
  TORCH_CHECK(beta_in.numel() == H || beta_in.numel() == B * H, "hybrid_decode (cpp): beta must be [H] or [B, H]");
  const at::Tensor* mutated[] = {&held_keys, &held_packed, &state};
  for (const at::Tensor* t : mutated) check_f32(*t, "a cache tensor");
  const at::Tensor q = q_in.contiguous(), k = k_in.contiguous(), v = v_in.contiguous();
  const at::Tensor hidden = hidden_in.contiguous(), fq = feature_q_in.contiguous(), fk = feature_k_in.contiguous();
  const at::Tensor down = down_in.contiguous(), up = up_in.contiguous(), bias = bias_in.contiguous();
  const at::Tensor beta = beta_in.contiguous();
  const at::Tensor* inputs[] = {&q, &k, &v, &hidden, &fq, &fk, &down, &up, &bias, &beta};
  for (const at::Tensor* t : inputs) check_f32(*t, "every input");
  int64_t ns = 0;
  at::Tensor sk, sv;
  if (sink_keys_in.has_value()) {
    TORCH_CHECK(sink_values_in.has_value(), "hybrid_decode (cpp): sink keys without sink values");
    sk = sink_keys_in->contiguous();
    sv = sink_values_in->contiguous();
    check_f32(sk, "sink_keys");
    check_f32(sv, "sink_values");
    ns = sk.size(2);
    TORCH_CHECK(sk.dim() == 4 && sk.size(0) == B && sk.size(1) == Hkv && sk.size(3) == d && sv.sizes() == sk.sizes(),
                "hybrid_decode (cpp): sinks must be [B, Hkv, n, d], got ", sk.sizes(), " and ", sv.sizes());
  }
  at::Tensor valid;
  if (valid_in.has_value()) {
    valid = valid_in->to(at::kBool).contiguous();
    TORCH_CHECK(valid.dim() == 2 && valid.size(0) == B && valid.size(1) == W,
                "hybrid_decode (cpp): valid must be [B, W] = [", B, ", ", W, "], got ", valid.sizes());
  }

  auto y = at::empty({B, 1, H * d}, q.options());
  // the new token's decay, every row: log a = -(softplus(up (down x) + bias) + delta_min)
  std::vector<float> log_a(B * Hkv * D);
  {
    std::vector<float> low(R);
    const float *xp = hidden.data_ptr<float>(), *dp = down.data_ptr<float>(), *upp = up.data_ptr<float>();
    const float* bp = bias.data_ptr<float>();
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t r = 0; r < R; ++r) low[r] = dot(dp + r * hidden_dim, xp + b * hidden_dim, int(hidden_dim));
      for (int64_t j = 0; j < Hkv * D; ++j)
        log_a[b * Hkv * D + j] = -(softplus(bp[j] + dot(upp + j * R, low.data(), int(R))) + float(delta_min));
    }
  }
  const float *qp = q.data_ptr<float>(), *kp = k.data_ptr<float>(), *vp = v.data_ptr<float>();
  const float *fqp = fq.data_ptr<float>(), *fkp = fk.data_ptr<float>(), *betap = beta.data_ptr<float>();
  const float* skp = ns ? sk.data_ptr<float>() : nullptr;
  const float* svp = ns ? sv.data_ptr<float>() : nullptr;
  const bool* validp = valid.defined() ? valid.data_ptr<bool>() : nullptr;
  float *hkp = held_keys.data_ptr<float>(), *hpp = held_packed.data_ptr<float>(), *sp = state.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  const bool beta_per_row = beta.numel() == B * H && B > 1;
  const int64_t n_ex = ns + W, P = d + D;  // exact keys; width of a packed [v | log a] row
  const float fscale = float(scaling);
  // one (row, KV head) is ~G (2d)^2 + (2d)^2 multiply-adds: stay on this thread below ~1M of them
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 20) / std::max<int64_t>(1, (G + 1) * D * D));
  at::parallel_for(0, B * Hkv, grain, [&](int64_t begin, int64_t end) {
    std::vector<float> scores(n_ex + 1), phi(D), z(d), read(d + 1), acc(d);
    std::vector<const float*> keys(n_ex), vals(n_ex);
    for (int64_t bk = begin; bk < end; ++bk) {
      const int64_t b = bk / Hkv, hk = bk % Hkv;
      float* S = sp + bk * D * D;
      float* hk_rows = hkp + bk * held * d;
      float* hp_rows = hpp + bk * held * P;
      for (int64_t j = 0; j < ns; ++j) keys[j] = skp + (bk * ns + j) * d, vals[j] = svp + (bk * ns + j) * d;
      for (int64_t i = 0; i < held; ++i) keys[ns + i] = hk_rows + i * d, vals[ns + i] = hp_rows + i * P;
      keys[ns + held] = kp + bk * d;
      vals[ns + held] = vp + bk * d;
      for (int64_t g = 0; g < G; ++g) {
        const int64_t h = hk * G + g;
        const float* qh = qp + (b * H + h) * d;
        float top = -std::numeric_limits<float>::infinity();
        for (int64_t j = 0; j < n_ex; ++j) {
          const bool ok = j < ns || validp == nullptr || validp[b * W + (j - ns)];
          scores[j] = ok ? fscale * dot(qh, keys[j], d) : -std::numeric_limits<float>::infinity();
          top = std::max(top, scores[j]);
        }
        // the liquid part reads the state before the oldest window key enters it: [N, D] = S^T phi_q(q)
        feature_map(qh, fqp + h * d * d, d, phi.data(), z.data());
        for (int m = 0; m <= d; ++m) read[m] = 0.0f;
        for (int c = 0; c < D; ++c) {
          const float pc = phi[c];
          const float* row = S + int64_t(c) * D;
          for (int m = 0; m <= d; ++m) read[m] += pc * row[m];
        }
        const float den = std::max(read[d], TINY);
        const float log_w = betap[beta_per_row ? b * H + h : h] + std::log(den);
        top = std::max(top, log_w);
        float total = 0.0f;
        for (int m = 0; m < d; ++m) acc[m] = 0.0f;
        for (int64_t j = 0; j < n_ex; ++j) {
          const float w = std::exp(scores[j] - top);  // a masked key: exp(-inf) = 0
          total += w;
          const float* vj = vals[j];
          for (int m = 0; m < d; ++m) acc[m] += w * vj[m];
        }
        const float wl = std::exp(log_w - top);
        total += wl;
        const float inv = 1.0f / total, wl_den = wl / den;
        float* yh = yp + b * H * d + h * d;
        for (int m = 0; m < d; ++m) yh[m] = (acc[m] + wl_den * read[m]) * inv;
      }
      // key 0 (the oldest held key) leaves the window: S <- diag(a) S + phi_k(k) [v, 1, 0...]^T; a padded key
      // contributes nothing and does not decay the state
      if (validp == nullptr || validp[b * W]) {
        feature_map(hk_rows, fkp + hk * d * d, d, phi.data(), z.data());
        const float* v0 = hp_rows;
        const float* la0 = hp_rows + d;
        for (int c = 0; c < D; ++c) {
          const float a = std::exp(std::min(la0[c], 0.0f)), pc = phi[c];
          float* row = S + int64_t(c) * D;
          for (int m = 0; m < d; ++m) row[m] = a * row[m] + pc * v0[m];
          row[d] = a * row[d] + pc;
          for (int m = d + 1; m < D; ++m) row[m] = a * row[m];
        }
      }
      // the held window moves by one: keys 1..W-2 down, the new key (and its [v | log a]) last
      std::memmove(hk_rows, hk_rows + d, sizeof(float) * (held - 1) * d);
      std::memcpy(hk_rows + (held - 1) * d, kp + bk * d, sizeof(float) * d);
      std::memmove(hp_rows, hp_rows + P, sizeof(float) * (held - 1) * P);
      std::memcpy(hp_rows + (held - 1) * P, vp + bk * d, sizeof(float) * d);
      std::memcpy(hp_rows + (held - 1) * P + d, log_a.data() + bk * D, sizeof(float) * D);
    }
  });
  return y;
}

}  // namespace lm
