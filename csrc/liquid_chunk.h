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
// Pairs inside one sub-block (the diagonal blocks) use prod_{t in (j, i]} exp(la_t), and exp(l),
// exp(rl) are such running products too: at most BS-1 factors, each the exp of one la_t <= 0, so
// the relative error stays within a few ulp even where a cumulative sum would be large.
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "liquid_simd.h"

#if defined(__SSE__)
#include <xmmintrin.h>
#endif

namespace lm {

#ifndef LM_CHUNK
#define LM_CHUNK 64
#endif
#ifndef LM_SUBBLOCK
#define LM_SUBBLOCK 8
#endif
constexpr int CH = LM_CHUNK;     // chunk length (time steps)
constexpr int BS = LM_SUBBLOCK;  // sub-block length; a multiple of 8 dividing CH
static_assert(CH % BS == 0 && BS % 8 == 0, "LM_SUBBLOCK must be a multiple of 8 dividing LM_CHUNK");
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

// Row addressing of one operand: element (b, h, t, c) at base[b*sB + h*sH + t*sT + c] (the channel dim
// is contiguous). Lets the kernels read q/k/v/log_a straight out of a [B, T, H, d] projection buffer
// (sT = H*d or wider) and write [B, T, H, d] outputs, with no transposing copy on either side.
struct Rows {
  int64_t sB = 0, sH = 0, sT = 0, H = 1;
  int64_t off(int64_t bh) const { return (bh / H) * sB + (bh % H) * sH; }
};

// Rows [t0, t0+L) of one slab (row stride ld) as fp32 [L][dp], padded with zeros to dp.
template <typename T>
static inline void load_rows_generic(const T* base, int64_t T_len, int64_t t0, int L, int d, int dp, bool reverse,
                                     float* dst, int64_t ld) {
  for (int i = 0; i < L; ++i) {
    const T* src = base + phys(t0 + i, T_len, reverse) * ld;
    float* row = dst + i * dp;
    if constexpr (std::is_same_v<T, float>) {
      std::memcpy(row, src, sizeof(float) * d);
    } else {
      for (int c = 0; c < d; ++c) row[c] = static_cast<float>(src[c]);
    }
    for (int c = d; c < dp; ++c) row[c] = 0.0f;
  }
}

template <typename T>
static inline void store_rows_generic(const float* src, int64_t T_len, int64_t t0, int L, int d, int dp, bool reverse,
                                      T* base, int64_t ld) {
  for (int i = 0; i < L; ++i) {
    T* dst = base + phys(t0 + i, T_len, reverse) * ld;
    const float* row = src + i * dp;
    if constexpr (std::is_same_v<T, float>) {
      std::memcpy(dst, row, sizeof(float) * d);
    } else {
      for (int c = 0; c < d; ++c) dst[c] = static_cast<T>(row[c]);
    }
  }
}

// Software prefetch of rows [t0, t0+L) (one cache line at a time).
template <typename T>
static inline void prefetch_rows(const T* base, int64_t T_len, int64_t t0, int64_t L, int d, bool reverse,
                                 int64_t ld) {
  const int64_t row_bytes = d * static_cast<int64_t>(sizeof(T));
  for (int64_t i = 0; i < L; ++i) {
    const char* p = reinterpret_cast<const char*>(base + phys(t0 + i, T_len, reverse) * ld);
    for (int64_t off = 0; off < row_bytes; off += 64) __builtin_prefetch(p + off, 0, 3);
  }
}

// Rows [t0, t0+L) of one (batch, head) slab as fp32 [L][dp]: the input itself when it already has
// that layout (fp32, d == dp, rows adjacent, forward order), else gathered/converted into buf.
template <typename T>
static inline const float* bind_rows(const T* base, int64_t T_len, int64_t t0, int L, int d, int dp, bool reverse,
                                     float* buf, int64_t ld) {
  if constexpr (std::is_same_v<T, float>) {
    if (d == dp && !reverse && ld == d) return base + t0 * d;
  }
  load_rows_generic(base, T_len, t0, L, d, dp, reverse, buf, ld);
  return buf;
}

// Where to write output rows: straight into the output when the layout matches, else buf (then
// finish_rows scatters/converts).
template <typename T>
static inline float* out_rows(T* base, int64_t t0, int d, int dp, bool reverse, float* buf, int64_t ld) {
  if constexpr (std::is_same_v<T, float>) {
    if (d == dp && !reverse && ld == d) return base + t0 * d;
  }
  return buf;
}

template <typename T>
static inline void finish_rows(const float* src, int64_t T_len, int64_t t0, int L, int d, int dp, bool reverse,
                               T* base, int64_t ld) {
  if (static_cast<const void*>(src) == static_cast<const void*>(base + t0 * ld)) return;
  store_rows_generic(src, T_len, t0, L, d, dp, reverse, base, ld);
}

// Decay factors of one chunk, computed from its log-decays la[L][dp].
// Inside a sub-block (<= BS steps) decays are running products of a_t = exp(la_t) (at most BS-1
// factors, each exp of a value <= 0); across sub-blocks they are exps of direct sums of block totals.
struct ChunkDecay {
  int dp = 0, L = 0, nb = 0;
  bool positive = false;           // saw log_a > 0 (a contract violation reported by the caller)
  std::vector<float> Ea, El, Erl;  // [CH][dp] a_t, exp(l_i), exp(rl_j)
  std::vector<float> tot;          // [NB][dp] block totals T_J
  std::vector<float> er, es;       // [NB][dp] exp(sum_{B<I} T_B), exp(sum_{B>J} T_B)
  std::vector<float> egL;          // [dp] exp(sum of all T) = chunk decay of the state
  std::vector<float> w;            // [NB][NB][dp] w_IJ for J < I
  std::vector<float> tmp;          // [dp]

  explicit ChunkDecay(int dp_)
      : dp(dp_), Ea(CH * dp_), El(CH * dp_), Erl(CH * dp_), tot(NB * dp_), er(NB * dp_), es(NB * dp_),
        egL(dp_), w(NB * NB * dp_), tmp(dp_) {}

  // full=false computes only what the state update needs (Erl, es, egL).
  void compute(const float* la, int L_, bool full) {
    L = L_;
    nb = (L + BS - 1) / BS;
    exp_row(la, Ea.data(), L * dp);
    for (int I = 0; I < nb; ++I) {
      const int s = I * BS, e = std::min(L, s + BS);
      float* t = tot.data() + I * dp;
      for (int c = 0; c < dp; c += VL) {
        v8 sum = bc(0.0f), rp = bc(1.0f), fp = bc(1.0f);
        v8i pos = (v8i){0, 0, 0, 0, 0, 0, 0, 0};
        for (int i = s; i < e; ++i) {
          const v8 x = ld(la + i * dp + c);
          sum += x;
          pos |= x > bc(0.0f);
        }
        for (int u = 0; u < VL; ++u) positive |= pos[u] != 0;
        st(t + c, sum);
        for (int j = e - 1; j >= s; --j) {  // exclusive reverse running product
          st(Erl.data() + j * dp + c, rp);
          rp *= ld(Ea.data() + j * dp + c);
        }
        if (full)
          for (int i = s; i < e; ++i) {  // inclusive forward running product
            fp *= ld(Ea.data() + i * dp + c);
            st(El.data() + i * dp + c, fp);
          }
      }
    }
    // suffix sums of block totals -> es; their full sum -> egL
    for (int c = 0; c < dp; ++c) tmp[c] = 0.0f;
    for (int J = nb - 1; J >= 0; --J) {
      exp_row(tmp.data(), es.data() + J * dp, dp);
      const float* t = tot.data() + J * dp;
      for (int c = 0; c < dp; ++c) tmp[c] += t[c];
    }
    exp_row(tmp.data(), egL.data(), dp);
    if (!full) return;
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

#if defined(__AVX__)
#include <immintrin.h>
static inline void transpose8x8(const float* src, long lds, float* dst, long ldd) {
  __m256 r0 = _mm256_loadu_ps(src + 0 * lds), r1 = _mm256_loadu_ps(src + 1 * lds);
  __m256 r2 = _mm256_loadu_ps(src + 2 * lds), r3 = _mm256_loadu_ps(src + 3 * lds);
  __m256 r4 = _mm256_loadu_ps(src + 4 * lds), r5 = _mm256_loadu_ps(src + 5 * lds);
  __m256 r6 = _mm256_loadu_ps(src + 6 * lds), r7 = _mm256_loadu_ps(src + 7 * lds);
  __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
  __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  _mm256_storeu_ps(dst + 0 * ldd, _mm256_permute2f128_ps(u0, u4, 0x20));
  _mm256_storeu_ps(dst + 1 * ldd, _mm256_permute2f128_ps(u1, u5, 0x20));
  _mm256_storeu_ps(dst + 2 * ldd, _mm256_permute2f128_ps(u2, u6, 0x20));
  _mm256_storeu_ps(dst + 3 * ldd, _mm256_permute2f128_ps(u3, u7, 0x20));
  _mm256_storeu_ps(dst + 4 * ldd, _mm256_permute2f128_ps(u0, u4, 0x31));
  _mm256_storeu_ps(dst + 5 * ldd, _mm256_permute2f128_ps(u1, u5, 0x31));
  _mm256_storeu_ps(dst + 6 * ldd, _mm256_permute2f128_ps(u2, u6, 0x31));
  _mm256_storeu_ps(dst + 7 * ldd, _mm256_permute2f128_ps(u3, u7, 0x31));
}
#endif

// dst[c][r] = src[r][c] for r < rows, c < cols (cols a multiple of 8).
static inline void transpose(const float* src, int rows, int cols, long lds, float* dst, long ldd) {
  int r = 0;
#if defined(__AVX__)
  for (; r + 8 <= rows; r += 8)
    for (int c = 0; c < cols; c += 8) transpose8x8(src + r * lds + c, lds, dst + c * ldd + r, ldd);
#endif
  for (; r < rows; ++r)
    for (int c = 0; c < cols; ++c) dst[c * ldd + r] = src[r * lds + c];
}

}  // namespace lm
