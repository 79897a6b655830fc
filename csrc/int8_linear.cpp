// Weight-only int8 matmul for a few rows of activations (decode): y = (x @ qweight^T) * scale (+ bias), the kernel
// behind src/liquid_memory/hf/weights.py's Int8Linear. At batch 1 a decode step reads every weight once, so the
// time is the weight bytes: each int8 row is read once per call, widened to fp32 in registers and multiplied into
// the fp32 activations (a few KB, in L1). No bf16 round trip of x or y; fp32 accumulation, so the only roundings
// are fp32 summation and, for bf16 x, the output's.
//
// Tiles of R weight rows x MB activation rows. AVX-512 (F/BW/VL, chosen at run time; the extension is built for
// x86-64-v3): 16 lanes per step, masked loads for K not a multiple of 16. Portable path: the same tiles on 8-lane
// GCC vectors (AVX2 with the build's flags), a scalar tail. Threads split the output rows.
#include "int8_linear.h"

#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "liquid_simd.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>  // also for the AVX2 widening of the portable path
#define LM_INT8_AVX512 1
#define LM_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))
#endif

namespace lm {
namespace {

// One call: x [M, K] fp32, the int8 rows, the per-row scale (fp32 or bf16 bits), optional fp32 bias, y [M, N] fp32.
struct Gemv {
  int64_t M, N, K;
  const float* x;
  const int8_t* q;
  const float* scale_f;
  const uint16_t* scale_bf16;
  const float* bias;
  float* y;
};

inline float row_scale(const Gemv& g, int64_t n) {
  if (g.scale_f) return g.scale_f[n];
  const uint32_t bits = uint32_t(g.scale_bf16[n]) << 16;
  float s;
  std::memcpy(&s, &bits, sizeof(s));
  return s;
}

inline void store(const Gemv& g, int64_t m, int64_t n, float dot) {
  const float v = dot * row_scale(g, n);
  g.y[m * g.N + n] = g.bias ? v + g.bias[n] : v;
}

typedef int8_t v8b __attribute__((vector_size(8)));

// Rows streaming from memory (a decode step reads 143 MB of int8 weights, each matrix once) arrive in time only if
// asked for ahead: the tiles request the bytes PREFETCH_AHEAD past the ones they read, and each range first requests
// its first PREFETCH_START bytes. Into L2 (prefetcht1): more requests can be in flight than L1 allows. Measured on
// SmolLM2's 211 matrices in decode order (1 thread): 25 CPU ms per token without prefetching, 12 one tile ahead into
// L1, 8-9 with these settings.
constexpr int64_t PREFETCH_AHEAD = 16 << 10, PREFETCH_START = 32 << 10;

inline void prefetch_l2(const void* p) { __builtin_prefetch(p, 0, 2); }

// The first PREFETCH_START bytes of rows [n_begin, n_end).
inline void prefetch_start(const Gemv& g, int64_t n_begin, int64_t n_end) {
  const char* p = reinterpret_cast<const char*>(g.q + n_begin * g.K);
  const int64_t bytes = std::min<int64_t>(PREFETCH_START, (n_end - n_begin) * g.K);
  for (int64_t off = 0; off < bytes; off += 64) prefetch_l2(p + off);
}

// 8 int8 weights as fp32 (GCC scalarises __builtin_convertvector's sign extension, so AVX2 gets its instruction)
inline v8 widen8(const int8_t* p) {
#if defined(__AVX2__)
  const __m256 w = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  v8 r;
  std::memcpy(&r, &w, sizeof(r));
  return r;
#else
  v8b b;
  std::memcpy(&b, p, sizeof(b));
  return __builtin_convertvector(__builtin_convertvector(b, v8i), v8);
#endif
}

template <int MB, int R>
void tile_portable(const Gemv& g, int64_t m0, int64_t n0) {
  const int64_t K = g.K;
  const int8_t* rows[R];
  for (int r = 0; r < R; ++r) rows[r] = g.q + (n0 + r) * K;
  v8 acc[MB][R];
  for (int m = 0; m < MB; ++m)
    for (int r = 0; r < R; ++r) acc[m][r] = bc(0.0f);
  // the R rows are one run of R K bytes, 8 R of them read per step: every 64 columns, request the R lines
  // PREFETCH_AHEAD past the ones these 64 columns read
  const char* ahead = reinterpret_cast<const char*>(rows[0]) + PREFETCH_AHEAD;
  const char* ahead_end = reinterpret_cast<const char*>(g.q + g.N * K);
  int64_t k = 0;
  for (; k + VL <= K; k += VL) {
    if ((k & 63) == 0)
      for (int64_t line = 0; line < 64 * R; line += 64)
        if (ahead + k * R + line < ahead_end) prefetch_l2(ahead + k * R + line);
    v8 w[R];
    for (int r = 0; r < R; ++r) w[r] = widen8(rows[r] + k);
    for (int m = 0; m < MB; ++m) {
      const v8 xv = ld(g.x + (m0 + m) * K + k);
      for (int r = 0; r < R; ++r) acc[m][r] += xv * w[r];
    }
  }
  for (int m = 0; m < MB; ++m)
    for (int r = 0; r < R; ++r) {
      float s = hsum(acc[m][r]);
      for (int64_t t = k; t < K; ++t) s += g.x[(m0 + m) * K + t] * float(rows[r][t]);
      store(g, m0 + m, n0 + r, s);
    }
}

template <int MB, int R>
void rows_portable(const Gemv& g, int64_t m0, int64_t n_begin, int64_t n_end) {
  int64_t n = n_begin;
  for (; n + R <= n_end; n += R) tile_portable<MB, R>(g, m0, n);
  for (; n < n_end; ++n) tile_portable<MB, 1>(g, m0, n);
}

void run_portable(const Gemv& g, int64_t n_begin, int64_t n_end) {
  prefetch_start(g, n_begin, n_end);
  int64_t m = 0;
  for (; m + 4 <= g.M; m += 4) rows_portable<4, 2>(g, m, n_begin, n_end);
  switch (g.M - m) {  // 16 vector registers with AVX2: accumulators + weights + one x vector fit
    case 3: rows_portable<3, 2>(g, m, n_begin, n_end); break;
    case 2: rows_portable<2, 4>(g, m, n_begin, n_end); break;
    case 1: rows_portable<1, 4>(g, m, n_begin, n_end); break;
    default: break;
  }
}

#if defined(LM_INT8_AVX512)

template <int MB, int R>
LM_AVX512 inline void tile_avx512(const Gemv& g, int64_t m0, int64_t n0) {
  const int64_t K = g.K;
  const int8_t* rows[R];
  for (int r = 0; r < R; ++r) rows[r] = g.q + (n0 + r) * K;
  const float* xs[MB];
  for (int m = 0; m < MB; ++m) xs[m] = g.x + (m0 + m) * K;
  __m512 acc[MB][R];
  for (int m = 0; m < MB; ++m)
    for (int r = 0; r < R; ++r) acc[m][r] = _mm512_setzero_ps();
  // the R rows are one run of R K bytes, 16 R of them read per step: request the lines PREFETCH_AHEAD past them
  const char* ahead = reinterpret_cast<const char*>(rows[0]) + PREFETCH_AHEAD;
  const char* ahead_end = reinterpret_cast<const char*>(g.q + g.N * K);
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    for (int64_t line = 0; line < 16 * R; line += 64)
      if (ahead + k * R + line < ahead_end) prefetch_l2(ahead + k * R + line);
    __m512 w[R];
    for (int r = 0; r < R; ++r)
      w[r] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[r] + k))));
    for (int m = 0; m < MB; ++m) {
      const __m512 xv = _mm512_loadu_ps(xs[m] + k);
      for (int r = 0; r < R; ++r) acc[m][r] = _mm512_fmadd_ps(xv, w[r], acc[m][r]);
    }
  }
  if (k < K) {  // masked tail: lanes past K load zeros from neither array
    const __mmask16 mask = static_cast<__mmask16>((1u << (K - k)) - 1u);
    __m512 w[R];
    for (int r = 0; r < R; ++r)
      w[r] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(mask, rows[r] + k)));
    for (int m = 0; m < MB; ++m) {
      const __m512 xv = _mm512_maskz_loadu_ps(mask, xs[m] + k);
      for (int r = 0; r < R; ++r) acc[m][r] = _mm512_fmadd_ps(xv, w[r], acc[m][r]);
    }
  }
  for (int m = 0; m < MB; ++m)
    for (int r = 0; r < R; ++r) store(g, m0 + m, n0 + r, _mm512_reduce_add_ps(acc[m][r]));
}

template <int MB, int R>
LM_AVX512 void rows_avx512(const Gemv& g, int64_t m0, int64_t n_begin, int64_t n_end) {
  int64_t n = n_begin;
  for (; n + R <= n_end; n += R) tile_avx512<MB, R>(g, m0, n);
  for (; n < n_end; ++n) tile_avx512<MB, 1>(g, m0, n);
}

LM_AVX512 void run_avx512(const Gemv& g, int64_t n_begin, int64_t n_end) {
  prefetch_start(g, n_begin, n_end);
  int64_t m = 0;
  for (; m + 4 <= g.M; m += 4) rows_avx512<4, 4>(g, m, n_begin, n_end);
  switch (g.M - m) {
    case 3: rows_avx512<3, 4>(g, m, n_begin, n_end); break;
    case 2: rows_avx512<2, 8>(g, m, n_begin, n_end); break;
    case 1: rows_avx512<1, 8>(g, m, n_begin, n_end); break;
    default: break;
  }
}

bool cpu_has_avx512() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vl");
  return ok;
}
#endif

}  // namespace

at::Tensor int8_linear(const at::Tensor& x, const at::Tensor& qweight, const at::Tensor& scale,
                       const std::optional<at::Tensor>& bias, bool portable) {
  TORCH_CHECK(x.dim() == 2, "int8_linear (cpp): x must be [M, K], got ", x.sizes());
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16,
              "int8_linear (cpp): x must be float32 or bfloat16, got ", x.scalar_type());
  TORCH_CHECK(qweight.dim() == 2 && qweight.scalar_type() == at::kChar && qweight.is_contiguous(),
              "int8_linear (cpp): qweight must be a contiguous int8 [N, K] tensor, got ", qweight.scalar_type(), " ",
              qweight.sizes());
  const int64_t M = x.size(0), K = x.size(1), N = qweight.size(0);
  TORCH_CHECK(qweight.size(1) == K, "int8_linear (cpp): x has K = ", K, " columns, qweight ", qweight.size(1));
  TORCH_CHECK(scale.dim() == 1 && scale.size(0) == N && scale.is_contiguous() &&
                  (scale.scalar_type() == at::kFloat || scale.scalar_type() == at::kBFloat16),
              "int8_linear (cpp): scale must be a contiguous float32 or bfloat16 [N] tensor, got ", scale.scalar_type(),
              " ", scale.sizes());
  for (const at::Tensor* t : {&x, &qweight, &scale})
    TORCH_CHECK(t->device().is_cpu(), "int8_linear (cpp): tensors must be on CPU, got ", t->device());
  at::Tensor b;
  if (bias.has_value()) {
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == N && bias->device().is_cpu(),
                "int8_linear (cpp): bias must be a CPU [N] tensor, got ", bias->sizes());
    b = bias->to(at::kFloat).contiguous();
  }
  const at::Tensor xf = x.to(at::kFloat).contiguous();
  at::Tensor y = at::empty({M, N}, x.options().dtype(at::kFloat));
  if (M == 0 || N == 0) return y.to(x.scalar_type());
  Gemv g{M, N, K, xf.data_ptr<float>(), qweight.data_ptr<int8_t>(), nullptr, nullptr, nullptr, y.data_ptr<float>()};
  if (scale.scalar_type() == at::kFloat)
    g.scale_f = scale.data_ptr<float>();
  else
    g.scale_bf16 = reinterpret_cast<const uint16_t*>(scale.data_ptr<at::BFloat16>());
  if (b.defined()) g.bias = b.data_ptr<float>();
  void (*run)(const Gemv&, int64_t, int64_t) = run_portable;
#if defined(LM_INT8_AVX512)
  if (!portable && cpu_has_avx512()) run = run_avx512;
#endif
  // threads split the rows in blocks of 8 (every tile width divides it), each task at least ~64 KB of weights:
  // below that an OpenMP hand-off costs more than reading the rows
  constexpr int64_t BLOCK = 8;
  const int64_t blocks = (N + BLOCK - 1) / BLOCK;
  const int64_t grain = std::max<int64_t>(1, (int64_t(64) << 10) / std::max<int64_t>(1, BLOCK * K));
  at::parallel_for(0, blocks, grain, [&](int64_t begin, int64_t end) {
    run(g, begin * BLOCK, std::min(N, end * BLOCK));
  });
  return x.scalar_type() == at::kFloat ? y : y.to(x.scalar_type());
}

}  // namespace lm
