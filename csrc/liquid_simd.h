// SIMD building blocks for the liquid_scan CPU kernels.
//
// Written with GCC/Clang vector extensions (8 x fp32 = one AVX2 register with -march=x86-64-v3,
// two SSE registers otherwise) so the same source builds on any target; no at::vec because the
// extension is not compiled per CPU capability.
#pragma once

#include <cstdint>
#include <cstring>
#if defined(__AVX__)
#include <immintrin.h>
#endif

namespace lm {

typedef float v8 __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

constexpr int VL = 8;  // fp32 lanes per v8

static inline v8 ld(const float* p) {
  v8 r;
  std::memcpy(&r, p, sizeof(r));
  return r;
}
static inline void st(float* p, v8 x) { std::memcpy(p, &x, sizeof(x)); }
static inline v8 bc(float s) { return (v8){s, s, s, s, s, s, s, s}; }
static inline float hsum(v8 x) {
  return ((x[0] + x[4]) + (x[1] + x[5])) + ((x[2] + x[6]) + (x[3] + x[7]));
}

// exp(x) for x <= 0 (callers guarantee it; the kernels never evaluate a positive exponent).
// Cephes expf polynomial, about 1 ulp; x < -87.3 returns 0 (below the smallest normal float).
static inline v8 exp_nonpos(v8 x) {
  // clamp at -87.34 (result 2^-126, ~1e-38, instead of an exact underflow to 0: negligible, and
  // the kernels run with denormals flushed); max via the bit-select-free intrinsic where available
#if defined(__AVX__)
  x = (v8)_mm256_max_ps((__m256)x, (__m256)bc(-87.33654f));
#else
  x = x < bc(-87.33654f) ? bc(-87.33654f) : x;
#endif
  const v8 magic = bc(12582912.0f);  // 1.5 * 2^23: round-to-nearest trick, |x*log2e| < 2^22
  v8 fx = (x * bc(1.44269504088896341f) + magic) - magic;
  x = x - fx * bc(0.693359375f);
  x = x - fx * bc(-2.12194440e-4f);
  v8 y = bc(1.9875691500e-4f);
  y = y * x + bc(1.3981999507e-3f);
  y = y * x + bc(8.3334519073e-3f);
  y = y * x + bc(4.1665795894e-2f);
  y = y * x + bc(1.6666665459e-1f);
  y = y * x + bc(5.0000001201e-1f);
  y = y * (x * x) + x + bc(1.0f);
  v8i n = __builtin_convertvector(fx, v8i);
  v8i bits = (n + 127) << 23;
  v8 scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return y * scale;
}

// dst[i] = exp(src[i]) for n (multiple of 8) non-positive values.
static inline void exp_row(const float* src, float* dst, int n) {
  for (int c = 0; c < n; c += VL) st(dst + c, exp_nonpos(ld(src + c)));
}

// ---------------------------------------------------------------------------------------------
// Small GEMM: C[M x N] (=|+=) A[M x K] * B[K x N].
// A is addressed by strides (element (i, k) at A[i*ars + k*acs]) so transposed operands need no
// copy; B and C are row-major with N a multiple of 8. Register tile: MR rows x NV*8 columns.
template <int MR, int NV>
static inline void gemm_tile(int K, const float* A, long ars, long acs, const float* B, long ldb, float* C,
                             long ldc, bool accumulate) {
  v8 acc[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = accumulate ? ld(C + r * ldc + v * VL) : bc(0.0f);
  for (int k = 0; k < K; ++k) {
    v8 b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) b[v] = ld(B + k * ldb + v * VL);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      v8 a = bc(A[r * ars + k * acs]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] += a * b[v];
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) st(C + r * ldc + v * VL, acc[r][v]);
}

template <int NV>
static inline void gemm_cols(int M, int K, const float* A, long ars, long acs, const float* B, long ldb,
                             float* C, long ldc, bool accumulate) {
  int m = 0;
  if (M > 16)  // tall: 6-row tiles (12 accumulators), else 4-row tiles (sub-block rows are 8 or 16)
    for (; m + 6 <= M; m += 6) gemm_tile<6, NV>(K, A + m * ars, ars, acs, B, ldb, C + m * ldc, ldc, accumulate);
  for (; m + 4 <= M; m += 4) gemm_tile<4, NV>(K, A + m * ars, ars, acs, B, ldb, C + m * ldc, ldc, accumulate);
  const float* Am = A + m * ars;
  float* Cm = C + m * ldc;
  switch (M - m) {
    case 3: gemm_tile<3, NV>(K, Am, ars, acs, B, ldb, Cm, ldc, accumulate); break;
    case 2: gemm_tile<2, NV>(K, Am, ars, acs, B, ldb, Cm, ldc, accumulate); break;
    case 1: gemm_tile<1, NV>(K, Am, ars, acs, B, ldb, Cm, ldc, accumulate); break;
    default: break;
  }
}

static inline void gemm(int M, int N, int K, const float* A, long ars, long acs, const float* B, long ldb,
                        float* C, long ldc, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!accumulate)
      for (int i = 0; i < M; ++i) std::memset(C + i * ldc, 0, sizeof(float) * N);
    return;
  }
  int n = 0;
  for (; n + 16 <= N; n += 16) gemm_cols<2>(M, K, A, ars, acs, B + n, ldb, C + n, ldc, accumulate);
  if (n < N) gemm_cols<1>(M, K, A, ars, acs, B + n, ldb, C + n, ldc, accumulate);
}

}  // namespace lm
