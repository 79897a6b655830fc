// Shared per-chunk machinery of the liquid_scan CPU kernels (forward, backward, state pass).
//
// Recurrence (per batch x head): S_t = diag(exp(la_t)) S_{t-1} + k_t v_t^T,  o_t = S_t^T q_t.
// A chunk of L <= CH steps is split into sub-blocks of BS steps. Every decay factor is the exp of
// a *direct* sum of log-decays over exactly the steps it spans (never a difference of two large
// cumulative sums), so every exponent is <= 0 (nothing can overflow) and its relative accuracy does
// not degrade with the magnitude of the cumulative decay:
//   l_i   = sum of la over [start of i's block, i]          (inclusive local cumsum)
//   rl_j  = sum of la over (j, end of j's block)             (exclusive reverse local cumsum)
//   T_J   = sum of la over block J
//   w_IJ  = exp(sum of T over blocks strictly between J and I)            (J < I)
//   exp(g_i - g_j) = exp(l_i) * w_IJ * exp(rl_j)   for i in block I > J in block J
//   exp(g_i)       = exp(l_i) * exp(sum_{B<I} T_B)          (q side of the inter-chunk term)
//   exp(g_L - g_j) = exp(rl_j) * exp(sum_{B>J} T_B)        (k side of the state update)
// Pairs inside one sub-block use exp(sum of la over (j, i]) element-wise (the diagonal blocks).
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <vector>

#include "liquid_simd.h"

#if defined(__SSE__)
#include <xmmintrin.h>
#endif

namespace lm {

constexpr int CH = 64;  // chunk length (time steps)
constexpr int BS = 8;   // sub-block length; CH % BS == 0
constexpr int NB = CH / BS;

static inline int round_up8(int d) { return (d + VL - 1) / VL * VL; }

// Flush denormals to zero while a kernel runs: products of decays near the fp32 underflow limit
// would otherwise hit the slow denormal path. Restores the caller's mode on destruction.
struct DenormalGuard {
#if defined(__SSE__)
  unsigned int saved;
  DenormalGuard() : saved(_mm_getcsr()) { _mm_setcsr(saved | 0x8040); }
  ~DenormalGuard() { _mm_setcsr(saved); }
#endif
};

// Physical time index of logical step t (reverse runs the recurrence from the end).
static inline int64_t phys(int64_t t, int64_t T, bool reverse) { return reverse ? T - 1 - t : t; }

template <typename T>
static inline void load_rows(const T* base, int64_t T_len, int64_t t0, int L, int d, int dp, bool reverse,
                             float* dst) {
  for (int i = 0; i < L; ++i) {
    const T* src = base + phys(t0 + i, T_len, reverse) * d;
    float* row = dst + i * dp;
    for (int c = 0; c < d; ++c) row[c] = static_cast<float>(src[c]);
    for (int c = d; c < dp; ++c) row[c] = 0.0f;
  }
}

template <typename T>
static inline void store_rows(const float* src, int64_t T_len, int64_t t0, int L, int d, int dp, bool reverse,
                              T* base) {
  for (int i = 0; i < L; ++i) {
    T* dst = base + phys(t0 + i, T_len, reverse) * d;
    const float* row = src + i * dp;
    for (int c = 0; c < d; ++c) dst[c] = static_cast<T>(row[c]);
  }
}

// Decay factors of one chunk, computed from its log-decays la[L][dp].
struct ChunkDecay {
  int dp = 0, L = 0, nb = 0;
  std::vector<float> l, rl, El, Erl;  // [CH][dp]
  std::vector<float> tot;             // [NB][dp] block totals T_J
  std::vector<float> er, es;          // [NB][dp] exp(sum_{B<I} T_B), exp(sum_{B>J} T_B)
  std::vector<float> egL;             // [dp] exp(sum of all T) = chunk decay of the state
  std::vector<float> w;               // [NB][NB][dp] w_IJ for J < I
  std::vector<float> tmp;             // [dp]

  explicit ChunkDecay(int dp_)
      : dp(dp_), l(CH * dp_), rl(CH * dp_), El(CH * dp_), Erl(CH * dp_), tot(NB * dp_), er(NB * dp_),
        es(NB * dp_), egL(dp_), w(NB * NB * dp_), tmp(dp_) {}

  // full=false computes only what the state update needs (Erl, es, egL).
  void compute(const float* la, int L_, bool full) {
    L = L_;
    nb = (L + BS - 1) / BS;
    for (int I = 0; I < nb; ++I) {
      const int s = I * BS, e = std::min(L, s + BS);
      float* t = tot.data() + I * dp;
      for (int c = 0; c < dp; ++c) t[c] = 0.0f;
      for (int i = s; i < e; ++i) {  // inclusive forward local cumsum
        const float* a = la + i * dp;
        float* li = l.data() + i * dp;
        for (int c = 0; c < dp; ++c) {
          t[c] += a[c];
          li[c] = t[c];
        }
      }
      for (int c = 0; c < dp; ++c) tmp[c] = 0.0f;
      for (int j = e - 1; j >= s; --j) {  // exclusive reverse local cumsum
        float* r = rl.data() + j * dp;
        for (int c = 0; c < dp; ++c) r[c] = tmp[c];
        const float* a = la + j * dp;
        for (int c = 0; c < dp; ++c) tmp[c] += a[c];
      }
    }
    exp_row(rl.data(), Erl.data(), L * dp);
    // suffix sums of block totals -> es; their full sum -> egL
    for (int c = 0; c < dp; ++c) tmp[c] = 0.0f;
    for (int J = nb - 1; J >= 0; --J) {
      exp_row(tmp.data(), es.data() + J * dp, dp);
      const float* t = tot.data() + J * dp;
      for (int c = 0; c < dp; ++c) tmp[c] += t[c];
    }
    exp_row(tmp.data(), egL.data(), dp);
    if (!full) return;
    exp_row(l.data(), El.data(), L * dp);
    for (int c = 0; c < dp; ++c) tmp[c] = 0.0f;
    for (int I = 0; I < nb; ++I) {
      exp_row(tmp.data(), er.data() + I * dp, dp);
      const float* t = tot.data() + I * dp;
      for (int c = 0; c < dp; ++c) tmp[c] += t[c];
    }
    for (int I = 1; I < nb; ++I) {
      for (int c = 0; c < dp; ++c) tmp[c] = 0.0f;
      for (int J = I - 1; J >= 0; --J) {  // tmp = sum of T over blocks strictly between J and I
        exp_row(tmp.data(), w.data() + (I * NB + J) * dp, dp);
        const float* t = tot.data() + J * dp;
        for (int c = 0; c < dp; ++c) tmp[c] += t[c];
      }
    }
  }
  const float* wIJ(int I, int J) const { return w.data() + (I * NB + J) * dp; }
};

// S <- diag(decay) S + U   (dp x dp). precision_safe: compensated (Kahan + exact product error via
// fma) update; comp carries the running error so that the true state is S - comp.
void state_update(float* S, float* comp, const float* decay, const float* U, int dp, bool precision_safe);

// Dst = diag(decay) Src, in place allowed.
static inline void scale_rows(float* S, const float* decay, int rows, int cols) {
  for (int c = 0; c < rows; ++c) {
    const v8 a = bc(decay[c]);
    float* r = S + c * cols;
    for (int m = 0; m < cols; m += VL) st(r + m, ld(r + m) * a);
  }
}

static inline void transpose(const float* src, int rows, int cols, long lds, float* dst, long ldd) {
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) dst[c * ldd + r] = src[r * lds + c];
}

}  // namespace lm
