// Registers the liquid_scan CPU kernels as torch custom ops (namespace `liquid_memory`) and makes
// this library importable as the Python module `liquid_memory._C` (importing it runs the
// registration; fake kernels and autograd are registered from Python, see ops/cpp.py).
#include <Python.h>
#include <torch/library.h>

#include <ATen/Parallel.h>

#include <cmath>

#include "hybrid_decode.h"
#include "int8_linear.h"
#include "liquid_scan.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace lm {

void advise_huge_pages(const at::Tensor& t) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t huge = uintptr_t(2) << 20;
  const size_t bytes = t.numel() * t.element_size();
  if (bytes < 2 * huge) return;
  const uintptr_t p = reinterpret_cast<uintptr_t>(t.data_ptr());
  const uintptr_t lo = (p + huge - 1) & ~(huge - 1), hi = (p + bytes) & ~(huge - 1);
  if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE);
#else
  (void)t;
#endif
}

at::Tensor channel_contiguous(const at::Tensor& t) {
  return (t.size(3) <= 1 || t.stride(3) == 1) ? t : t.contiguous();
}

Rows rows_of(const at::Tensor& t) {
  Rows r;
  r.sB = t.stride(0);
  r.sH = t.stride(1);
  r.sT = t.stride(2);
  r.H = std::max<int64_t>(1, t.size(1));
  return r;
}

bool heads_inner(const at::Tensor& q) { return q.size(1) > 1 && q.size(2) > 1 && q.stride(1) < q.stride(2); }

at::Tensor empty_in_layout(const at::Tensor& q, at::ScalarType dtype) {
  const auto opts = q.options().dtype(dtype);
  if (!heads_inner(q)) return at::empty(q.sizes(), opts);
  return at::empty({q.size(0), q.size(2), q.size(1), q.size(3)}, opts).permute({0, 2, 1, 3});
}

ScanArgs check_scan_args(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& log_a,
                         const std::optional<at::Tensor>& initial_state, bool reverse, bool precision_safe) {
  TORCH_CHECK(q.dim() == 4, "liquid_scan (cpp): q must be [B, H, T, d], got shape ", q.sizes());
  TORCH_CHECK(k.sizes() == q.sizes() && v.sizes() == q.sizes() && log_a.sizes() == q.sizes(),
              "liquid_scan (cpp): q, k, v, log_a must share one shape [B, H, T, d] (dk == dv); got q ",
              q.sizes(), ", k ", k.sizes(), ", v ", v.sizes(), ", log_a ", log_a.sizes());
  TORCH_CHECK(k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type(),
              "liquid_scan (cpp): q, k, v must share one dtype; got ", q.scalar_type(), ", ", k.scalar_type(),
              ", ", v.scalar_type());
  TORCH_CHECK(q.scalar_type() == at::kFloat || q.scalar_type() == at::kBFloat16 || q.scalar_type() == at::kHalf,
              "liquid_scan (cpp): dtype ", q.scalar_type(),
              " is not supported (it computes in fp32); use float32/bfloat16/float16, or the naive backend");
  TORCH_CHECK(at::isFloatingType(log_a.scalar_type()), "liquid_scan (cpp): log_a must be floating point");
  for (const at::Tensor* t : {&q, &k, &v, &log_a})
    TORCH_CHECK(t->device().is_cpu(), "liquid_scan (cpp): tensors must be on CPU, got ", t->device());
  ScanArgs a;
  a.B = q.size(0);
  a.H = q.size(1);
  a.T = q.size(2);
  a.d = static_cast<int>(q.size(3));
  a.BH = a.B * a.H;
  a.reverse = reverse;
  a.precision_safe = precision_safe;
  TORCH_CHECK(a.d >= 1 && a.d <= 512, "liquid_scan (cpp): head dim d must be in [1, 512], got ", a.d);
  TORCH_CHECK(a.T < (int64_t(1) << 31), "liquid_scan (cpp): T too long");
  if (initial_state.has_value()) {
    const auto& s = *initial_state;
    TORCH_CHECK(s.dim() == 4 && s.size(0) == a.B && s.size(1) == a.H && s.size(2) == a.d && s.size(3) == a.d,
                "liquid_scan (cpp): initial_state must be [B, H, d, d] = [", a.B, ", ", a.H, ", ", a.d, ", ", a.d,
                "], got ", s.sizes());
    TORCH_CHECK(s.device().is_cpu(), "liquid_scan (cpp): initial_state must be on CPU");
  }
  return a;
}

// One decode step, in place on `state`: S = diag(exp(la)) S + k v^T ; returns o = S^T q.
at::Tensor liquid_step_(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& log_a,
                        at::Tensor& state) {
  TORCH_CHECK(q.dim() == 3, "liquid_step (cpp): q_t must be [B, H, d], got ", q.sizes());
  TORCH_CHECK(k.sizes() == q.sizes() && v.sizes() == q.sizes() && log_a.sizes() == q.sizes(),
              "liquid_step (cpp): q_t, k_t, v_t, log_a_t must share one shape [B, H, d]");
  const int64_t B = q.size(0), H = q.size(1), d = q.size(2);
  TORCH_CHECK(state.dim() == 4 && state.size(0) == B && state.size(1) == H && state.size(2) == d &&
                  state.size(3) == d,
              "liquid_step (cpp): state must be [B, H, d, d] = [", B, ", ", H, ", ", d, ", ", d, "], got ",
              state.sizes());
  TORCH_CHECK(state.scalar_type() == at::kFloat && state.is_contiguous() && state.device().is_cpu(),
              "liquid_step (cpp): state must be a contiguous float32 CPU tensor (it is updated in place)");
  TORCH_CHECK(k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type(),
              "liquid_step (cpp): q_t, k_t, v_t must share one dtype");
  auto qf = q.to(at::kFloat).contiguous(), kf = k.to(at::kFloat).contiguous();
  auto vf = v.to(at::kFloat).contiguous(), laf = log_a.to(at::kFloat).contiguous();
  auto o = at::empty({B, H, d}, q.options().dtype(at::kFloat));
  const float *qp = qf.data_ptr<float>(), *kp = kf.data_ptr<float>(), *vp = vf.data_ptr<float>();
  const float* lap = laf.data_ptr<float>();
  float* sp = state.data_ptr<float>();
  float* op = o.data_ptr<float>();
  // one step is tiny (d^2 per head): stay on the calling thread unless there are >= ~1M multiply-adds,
  // an OpenMP barrier costs more than the work (and far more on a busy machine)
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 20) / std::max<int64_t>(1, d * d));
  at::parallel_for(0, B * H, grain, [&](int64_t begin, int64_t end) {
    for (int64_t bh = begin; bh < end; ++bh) {
      const float *qh = qp + bh * d, *kh = kp + bh * d, *vh = vp + bh * d, *lah = lap + bh * d;
      float* S = sp + bh * d * d;
      float* oh = op + bh * d;
      for (int64_t m = 0; m < d; ++m) oh[m] = 0.0f;
      for (int64_t c = 0; c < d; ++c) {
        const float a = std::exp(std::min(lah[c], 0.0f)), kc = kh[c], qc = qh[c];
        float* row = S + c * d;
        for (int64_t m = 0; m < d; ++m) {
          row[m] = a * row[m] + kc * vh[m];
          oh[m] += qc * row[m];
        }
      }
    }
  });
  return o.to(q.scalar_type());
}

}  // namespace lm

TORCH_LIBRARY(liquid_memory, m) {
  m.def(
      "liquid_scan_fwd(Tensor q, Tensor k, Tensor v, Tensor log_a, Tensor? initial_state, bool reverse, "
      "bool precision_safe) -> (Tensor, Tensor)");
  m.def(
      "liquid_scan_bwd(Tensor q, Tensor k, Tensor v, Tensor log_a, Tensor? initial_state, Tensor grad_o, "
      "Tensor? grad_final_state, bool reverse, bool precision_safe) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def(
      "liquid_scan_fwd_normed(Tensor q, Tensor k, Tensor v, Tensor log_a, Tensor? initial_state, bool reverse, "
      "bool precision_safe, Tensor? norm_weight, float eps, float out_scale) -> (Tensor, Tensor)");
  m.def("liquid_step_(Tensor q, Tensor k, Tensor v, Tensor log_a, Tensor(a!) state) -> Tensor");
  m.def(
      "liquid_scan_fwd_grouped(Tensor q, Tensor k, Tensor v, Tensor log_a, Tensor? initial_state, "
      "bool precision_safe) -> (Tensor, Tensor)");
  m.def(
      "hybrid_decode_(Tensor q, Tensor k, Tensor v, Tensor hidden, Tensor(a!) held_keys, Tensor(b!) held_packed, "
      "Tensor? sink_keys, Tensor? sink_values, Tensor(c!) state, Tensor? valid, Tensor feature_q, Tensor feature_k, "
      "Tensor down, Tensor up, Tensor bias, Tensor beta, float scaling, float delta_min) -> Tensor");
  m.def("int8_linear(Tensor x, Tensor qweight, Tensor scale, Tensor? bias, bool portable=False) -> Tensor");
}

TORCH_LIBRARY_IMPL(liquid_memory, CPU, m) {
  m.impl("liquid_scan_fwd", &lm::liquid_scan_fwd);
  m.impl("liquid_scan_bwd", &lm::liquid_scan_bwd);
  m.impl("liquid_scan_fwd_normed", &lm::liquid_scan_fwd_normed);
  m.impl("liquid_step_", &lm::liquid_step_);
  m.impl("hybrid_decode_", &lm::hybrid_decode_);
  m.impl("liquid_scan_fwd_grouped", &lm::liquid_scan_fwd_grouped);
  m.impl("int8_linear", &lm::int8_linear);
}

extern "C" PyObject* PyInit__C(void) {
  static PyModuleDef def = {PyModuleDef_HEAD_INIT, "_C", "Liquid Memory C++ CPU kernels (torch custom ops).", -1,
                            nullptr};
  return PyModule_Create(&def);
}
