// liquid_scan forward on CPU: chunked, numerically safe for any decay (see liquid_chunk.h).
#include "liquid_scan.h"

#include <ATen/Parallel.h>

#include <atomic>
#include <cmath>

namespace lm {

__attribute__((optimize("fp-contract=off"))) void state_update(float* S, float* comp, const float* decay,
                                                                 const float* U, int dp, bool precision_safe) {
  if (!precision_safe) {
    for (int c = 0; c < dp; ++c) {
      const v8 a = bc(decay[c]);
      float* r = S + c * dp;
      const float* u = U + c * dp;
      for (int m = 0; m < dp; m += VL) st(r + m, ld(r + m) * a + ld(u + m));
    }
    return;
  }
  for (int c = 0; c < dp; ++c) {
    const float a = decay[c];
    float* r = S + c * dp;
    float* cp = comp + c * dp;
    const float* u = U + c * dp;
    for (int m = 0; m < dp; ++m) {
      const float p = a * r[m];
      const float perr = __builtin_fmaf(a, r[m], -p);  // exact rounding error of the product
      const float y = (u[m] + perr) - a * cp[m];
      const float t = p + y;
      cp[m] = (t - p) - y;
      r[m] = t;
    }
  }
}

Workspace::Workspace(int dp_)
    : dp(dp_), dec(dp_), Q(CH * dp_), K(CH * dp_), V(CH * dp_), LA(CH * dp_), Qe(CH * dp_), Qt(CH * dp_),
      Kt(CH * dp_), Ke(CH * dp_), KeT(dp_ * CH), KhT(dp_ * CH), A(CH * CH), O(CH * dp_), U(dp_ * dp_), acc(dp_) {}

void Workspace::prepare(int L, bool full) {
  dec.compute(la_, L, full);
  const int nb = dec.nb;
  // Kt = k * exp(g_L - g_j)  (state update)
  for (int J = 0; J < nb; ++J) {
    const int s = J * BS, e = std::min(L, s + BS);
    const float* es = dec.es.data() + J * dp;
    for (int j = s; j < e; ++j) {
      const float* k = k_ + j * dp;
      const float* er = dec.Erl.data() + j * dp;
      float* kt = Kt.data() + j * dp;
      for (int c = 0; c < dp; c += VL) st(kt + c, ld(k + c) * ld(er + c) * ld(es + c));
    }
  }
  if (!full) return;
  prepare_queries(L);
  for (int j = 0; j < L; ++j)  // Ke = k * exp(rl), KeT = Ke^T
    for (int c = 0; c < dp; c += VL) st(Ke.data() + j * dp + c, ld(k_ + j * dp + c) * ld(dec.Erl.data() + j * dp + c));
  transpose(Ke.data(), L, dp, dp, KeT.data(), CH);
}

// The query side of prepare (after it, for the chunk's decays): another query on the same keys needs only this.
void Workspace::prepare_queries(int L) {
  const int nb = dec.nb;
  for (int I = 0; I < nb; ++I) {
    const int s = I * BS, e = std::min(L, s + BS);
    const float* er = dec.er.data() + I * dp;
    for (int i = s; i < e; ++i) {
      const float* q = q_ + i * dp;
      const float* el = dec.El.data() + i * dp;
      float* qe = Qe.data() + i * dp;  // qe = q * exp(l);  qt = q * exp(g) = qe * exp(sum_{B<I} T_B)
      float* qt = Qt.data() + i * dp;
      for (int c = 0; c < dp; c += VL) {
        const v8 x = ld(q + c) * ld(el + c);
        st(qe + c, x);
        st(qt + c, x * ld(er + c));
      }
    }
  }
}

// Off-diagonal sub-block part of the intra-chunk matrix for rows of block I:
// A[I, 0:s] = qe_I . (ke_j * w_IJ)^T
void Workspace::intra_offdiag(int I) {
  const int s = I * BS, e = std::min(dec.L, s + BS);
  if (I == 0) return;
  for (int c = 0; c < dp; ++c) {
    const float* src = KeT.data() + c * CH;
    float* dst = KhT.data() + c * CH;
    for (int J = 0; J < I; ++J) {
      const v8 wc = bc(dec.wIJ(I, J)[c]);
      for (int j = J * BS; j < J * BS + BS; j += VL) st(dst + j, ld(src + j) * wc);
    }
  }
  gemm(e - s, s, dp, Qe.data() + s * dp, dp, 1, KhT.data(), CH, A.data() + s * CH, CH, false);
}

// Diagonal sub-block of A (lower incl. diagonal, zeros above) by element-wise exps.
void Workspace::intra_diag(int I) {
  const int s = I * BS, e = std::min(dec.L, s + BS), n = dp;
  const float* __restrict Ea = dec.Ea.data();
  const float* __restrict qp = q_;
  float* __restrict x = acc.data();
  float* __restrict Ap = A.data();
  for (int j = s; j < e; ++j) {
    const float* k = k_ + j * n;
    v8 sum = bc(0.0f);
    for (int c = 0; c < n; c += VL) {  // x = k_j * prod_{t in (j, i]} a_t, starting at i = j
      st(x + c, ld(k + c));
      sum += ld(qp + j * n + c) * ld(k + c);
    }
    Ap[j * CH + j] = hsum(sum);
    for (int i = j + 1; i < e; ++i) {
      const float* a = Ea + i * n;
      const float* q = qp + i * n;
      v8 s0 = bc(0.0f), s1 = bc(0.0f);
      int c = 0;
      for (; c + 2 * VL <= n; c += 2 * VL) {
        const v8 x0 = ld(x + c) * ld(a + c), x1 = ld(x + c + VL) * ld(a + c + VL);
        st(x + c, x0);
        st(x + c + VL, x1);
        s0 += ld(q + c) * x0;
        s1 += ld(q + c + VL) * x1;
      }
      for (; c < n; c += VL) {
        const v8 x0 = ld(x + c) * ld(a + c);
        st(x + c, x0);
        s0 += ld(q + c) * x0;
      }
      Ap[i * CH + j] = hsum(s0 + s1);
    }
    for (int i = s; i < j; ++i) Ap[i * CH + j] = 0.0f;
  }
}

// One chunk: O = (qe * er) S + A V;  S <- diag(egL) S + K~^T V.
void Workspace::chunk_forward(int L, float* S, float* comp, bool precision_safe, bool outputs) {
  prepare(L, outputs);
  if (outputs) chunk_outputs(L, S);
  chunk_state(L, S, comp, precision_safe);
}

// O = (qe * er) S + A V for the bound query rows (S: the state before the chunk).
void Workspace::chunk_outputs(int L, const float* S) {
  const int nb = dec.nb;
  gemm(L, dp, dp, Qt.data(), dp, 1, S, dp, o_, dp, false);  // inter-chunk term
  for (int I = 0; I < nb; ++I) {
    const int s = I * BS, e = std::min(L, s + BS);
    intra_offdiag(I);
    intra_diag(I);
    gemm(e - s, dp, e, A.data() + s * CH, CH, 1, v_, dp, o_ + s * dp, dp, true);
  }
}

// U = K~^T V ; S <- diag(egL) S + U
void Workspace::chunk_state(int L, float* S, float* comp, bool precision_safe) {
  gemm(dp, dp, L, Kt.data(), 1, dp, v_, dp, U.data(), dp, false);
  state_update(S, comp, dec.egL.data(), U.data(), dp, precision_safe);
}

// The layer's read-out epilogue on one chunk's output rows O[L][dp] of head h, in place:
// per-head RMSNorm with weight w[h*d : (h+1)*d] when w is given, else a plain scale.
static void epilogue_rows(float* O, int L, int d, int dp, const float* w, float eps, float scale) {
  for (int i = 0; i < L; ++i) {
    float* row = O + i * dp;
    if (w == nullptr) {
      for (int c = 0; c < d; ++c) row[c] *= scale;
      continue;
    }
    v8 acc = bc(0.0f);
    int c = 0;
    for (; c + VL <= d; c += VL) acc += ld(row + c) * ld(row + c);
    float ss = hsum(acc);
    for (; c < d; ++c) ss += row[c] * row[c];
    const float r = 1.0f / std::sqrt(ss / static_cast<float>(d) + eps);
    c = 0;
    for (; c + VL <= d; c += VL) st(row + c, ld(row + c) * bc(r) * ld(w + c));
    for (; c < d; ++c) row[c] = row[c] * r * w[c];
  }
}

template <typename T>
static void fwd_impl(const ScanArgs& a, const T* q, const T* k, const T* v, const float* la, const float* init,
                     T* o, float* final_state, const Rows& rq, const Rows& rk, const Rows& rv, const Rows& rl,
                     const Rows& ro, const Epilogue& ep = Epilogue{}) {
  const int d = a.d, dp = round_up8(d);
  const int64_t T_len = a.T;
  std::atomic<bool> positive{false};
  // One task per thread; threads pull (batch, head) slabs from a shared counter so a thread that the
  // OS deschedules (busy machine) does not hold back the others as a static split would.
  std::atomic<int64_t> next{0};
  const int64_t workers = std::min<int64_t>(a.BH, at::get_num_threads());
  at::parallel_for(0, workers, 1, [&](int64_t, int64_t) {
    DenormalGuard guard;
    Workspace ws(dp);
    std::vector<float> S(dp * dp), comp(dp * dp);
    for (int64_t bh = next++; bh < a.BH; bh = next++) {
      load_state(init ? init + bh * d * d : nullptr, d, dp, S.data());
      std::fill(comp.begin(), comp.end(), 0.0f);
      for (int64_t t0 = 0; t0 < T_len; t0 += CH) {
        const int L = static_cast<int>(std::min<int64_t>(CH, T_len - t0));
        const bool r = a.reverse;
        ws.q_ = bind_rows(q + rq.off(bh), T_len, t0, L, d, dp, r, ws.Q.data(), rq.sT);
        ws.k_ = bind_rows(k + rk.off(bh), T_len, t0, L, d, dp, r, ws.K.data(), rk.sT);
        ws.v_ = bind_rows(v + rv.off(bh), T_len, t0, L, d, dp, r, ws.V.data(), rv.sT);
        ws.la_ = bind_rows(la + rl.off(bh), T_len, t0, L, d, dp, r, ws.LA.data(), rl.sT);
        ws.o_ = out_rows(o + ro.off(bh), t0, d, dp, r, ws.O.data(), ro.sT);
        if (t0 + CH < T_len) {  // pull the next chunk's inputs towards the cache while this one computes
          const int64_t nxt = std::min<int64_t>(CH, T_len - t0 - CH);
          prefetch_rows(q + rq.off(bh), T_len, t0 + CH, nxt, d, r, rq.sT);
          prefetch_rows(k + rk.off(bh), T_len, t0 + CH, nxt, d, r, rk.sT);
          prefetch_rows(v + rv.off(bh), T_len, t0 + CH, nxt, d, r, rv.sT);
          prefetch_rows(la + rl.off(bh), T_len, t0 + CH, nxt, d, r, rl.sT);
        }
        ws.chunk_forward(L, S.data(), comp.data(), a.precision_safe, true);
        if (ep.active)
          epilogue_rows(ws.o_, L, d, dp, ep.weight ? ep.weight + (bh % a.H) * d : nullptr, ep.eps, ep.scale);
        finish_rows(ws.o_, T_len, t0, L, d, dp, r, o + ro.off(bh), ro.sT);
      }
      store_state(S.data(), comp.data(), d, dp, final_state + bh * d * d);
    }
    if (ws.dec.positive) positive = true;
  });
  TORCH_CHECK(!positive, "liquid_scan (cpp): log_a must be <= 0 (decays in (0, 1]); got a positive value");
}

// Grouped queries: G = H / Hkv query heads read each KV head's recurrence. The keys' side of a chunk (decays,
// K~, the state update) is computed once per KV head; only the query side runs per query head.
template <typename T>
static void fwd_grouped_impl(int64_t B, int64_t H, int64_t Hkv, int64_t T_len, int d, bool precision_safe,
                             const T* q, const T* k, const T* v, const float* la, const float* init, T* o,
                             float* final_state, const Rows& rq, const Rows& rk, const Rows& rv, const Rows& rl,
                             const Rows& ro) {
  const int dp = round_up8(d);
  const int64_t G = H / Hkv, slabs = B * Hkv;
  std::atomic<bool> positive{false};
  std::atomic<int64_t> next{0};
  const int64_t workers = std::min<int64_t>(slabs, at::get_num_threads());
  at::parallel_for(0, workers, 1, [&](int64_t, int64_t) {
    DenormalGuard guard;
    Workspace ws(dp);
    std::vector<float> S(dp * dp), comp(dp * dp);
    for (int64_t bk = next++; bk < slabs; bk = next++) {
      const int64_t b = bk / Hkv, hk = bk % Hkv;
      load_state(init ? init + bk * d * d : nullptr, d, dp, S.data());
      std::fill(comp.begin(), comp.end(), 0.0f);
      for (int64_t t0 = 0; t0 < T_len; t0 += CH) {
        const int L = static_cast<int>(std::min<int64_t>(CH, T_len - t0));
        ws.k_ = bind_rows(k + rk.off(bk), T_len, t0, L, d, dp, false, ws.K.data(), rk.sT);
        ws.v_ = bind_rows(v + rv.off(bk), T_len, t0, L, d, dp, false, ws.V.data(), rv.sT);
        ws.la_ = bind_rows(la + rl.off(bk), T_len, t0, L, d, dp, false, ws.LA.data(), rl.sT);
        for (int64_t g = 0; g < G; ++g) {
          const int64_t bh = b * H + hk * G + g;
          ws.q_ = bind_rows(q + rq.off(bh), T_len, t0, L, d, dp, false, ws.Q.data(), rq.sT);
          ws.o_ = out_rows(o + ro.off(bh), t0, d, dp, false, ws.O.data(), ro.sT);
          if (g == 0)
            ws.prepare(L, true);
          else
            ws.prepare_queries(L);
          ws.chunk_outputs(L, S.data());
          finish_rows(ws.o_, T_len, t0, L, d, dp, false, o + ro.off(bh), ro.sT);
        }
        ws.chunk_state(L, S.data(), comp.data(), precision_safe);
      }
      store_state(S.data(), comp.data(), d, dp, final_state + bk * d * d);
    }
    if (ws.dec.positive) positive = true;
  });
  TORCH_CHECK(!positive, "liquid_scan (cpp): log_a must be <= 0 (decays in (0, 1]); got a positive value");
}

// What both forward ops' host paths need: the inputs laid out by channel, o (q's layout, q's heads) and the
// final state [B, KV heads, d, d] in fp32.
struct ForwardBuffers {
  at::Tensor qc, kc, vc, lac, init, o, fs;
  const float* initp() const { return init.defined() ? init.data_ptr<float>() : nullptr; }
};

static ForwardBuffers prepare_forward(const ScanArgs& a, const at::Tensor& q, const at::Tensor& k,
                                      const at::Tensor& v, const at::Tensor& log_a,
                                      const std::optional<at::Tensor>& initial_state) {
  ForwardBuffers f{channel_contiguous(q), channel_contiguous(k), channel_contiguous(v),
                   channel_contiguous(log_a.to(at::kFloat)), at::Tensor(), empty_in_layout(q, q.scalar_type()),
                   at::empty({a.B, a.H, a.d, a.d}, q.options().dtype(at::kFloat))};
  if (initial_state.has_value()) f.init = initial_state->to(at::kFloat).contiguous();
  advise_huge_pages(f.o);
  return f;
}

std::tuple<at::Tensor, at::Tensor> liquid_scan_fwd_grouped(const at::Tensor& q, const at::Tensor& k,
                                                           const at::Tensor& v, const at::Tensor& log_a,
                                                           const std::optional<at::Tensor>& initial_state,
                                                           bool precision_safe) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4, "liquid_scan_fwd_grouped (cpp): q, k must be 4-D");
  TORCH_CHECK(k.size(1) > 0 && q.size(1) % k.size(1) == 0, "liquid_scan_fwd_grouped (cpp): query heads ",
              q.size(1), " not a multiple of KV heads ", k.size(1));
  // the KV heads' shapes and dtypes are those of a plain scan over k (q's head count aside)
  ScanArgs a = check_scan_args(k, k, v, log_a, initial_state, false, precision_safe);
  TORCH_CHECK(q.size(0) == a.B && q.size(2) == a.T && q.size(3) == a.d && q.scalar_type() == k.scalar_type(),
              "liquid_scan_fwd_grouped (cpp): q must be [B, H, T, d] like k (dtype too), got ", q.sizes());
  TORCH_CHECK(q.device().is_cpu(), "liquid_scan_fwd_grouped (cpp): tensors must be on CPU");
  ForwardBuffers f = prepare_forward(a, q, k, v, log_a, initial_state);
  LM_DISPATCH(q.scalar_type(), [&](auto tag) {
    using scalar_t = decltype(tag);
    fwd_grouped_impl<scalar_t>(a.B, q.size(1), a.H, a.T, a.d, precision_safe, f.qc.data_ptr<scalar_t>(),
                               f.kc.data_ptr<scalar_t>(), f.vc.data_ptr<scalar_t>(), f.lac.data_ptr<float>(),
                               f.initp(), f.o.data_ptr<scalar_t>(), f.fs.data_ptr<float>(), rows_of(f.qc),
                               rows_of(f.kc), rows_of(f.vc), rows_of(f.lac), rows_of(f.o));
  });
  return {f.o, f.fs};
}

// The plain forward op's host path; `ep` optionally fuses the read-out normalisation (inference).
static std::tuple<at::Tensor, at::Tensor> run_forward(const ScanArgs& a, const at::Tensor& q, const at::Tensor& k,
                                                      const at::Tensor& v, const at::Tensor& log_a,
                                                      const std::optional<at::Tensor>& initial_state,
                                                      const Epilogue& ep) {
  ForwardBuffers f = prepare_forward(a, q, k, v, log_a, initial_state);
  LM_DISPATCH(q.scalar_type(), [&](auto tag) {
    using scalar_t = decltype(tag);
    fwd_impl<scalar_t>(a, f.qc.data_ptr<scalar_t>(), f.kc.data_ptr<scalar_t>(), f.vc.data_ptr<scalar_t>(),
                       f.lac.data_ptr<float>(), f.initp(), f.o.data_ptr<scalar_t>(), f.fs.data_ptr<float>(),
                       rows_of(f.qc), rows_of(f.kc), rows_of(f.vc), rows_of(f.lac), rows_of(f.o), ep);
  });
  return {f.o, f.fs};
}

std::tuple<at::Tensor, at::Tensor> liquid_scan_fwd(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                   const at::Tensor& log_a,
                                                   const std::optional<at::Tensor>& initial_state, bool reverse,
                                                   bool precision_safe) {
  ScanArgs a = check_scan_args(q, k, v, log_a, initial_state, reverse, precision_safe);
  return run_forward(a, q, k, v, log_a, initial_state, Epilogue{});
}

std::tuple<at::Tensor, at::Tensor> liquid_scan_fwd_normed(const at::Tensor& q, const at::Tensor& k,
                                                          const at::Tensor& v, const at::Tensor& log_a,
                                                          const std::optional<at::Tensor>& initial_state,
                                                          bool reverse, bool precision_safe,
                                                          const std::optional<at::Tensor>& norm_weight, double eps,
                                                          double out_scale) {
  ScanArgs a = check_scan_args(q, k, v, log_a, initial_state, reverse, precision_safe);
  at::Tensor w;
  if (norm_weight.has_value()) {
    w = norm_weight->to(at::kFloat).contiguous();
    TORCH_CHECK(w.dim() == 1 && w.numel() == a.H * a.d, "liquid_scan_fwd_normed (cpp): norm_weight must be [H*d] = [",
                a.H * a.d, "], got ", norm_weight->sizes());
  }
  TORCH_CHECK(eps > 0, "liquid_scan_fwd_normed (cpp): eps must be > 0");
  Epilogue ep;
  ep.active = true;
  ep.weight = w.defined() ? w.data_ptr<float>() : nullptr;  // w outlives the kernel call below
  ep.eps = static_cast<float>(eps);
  ep.scale = static_cast<float>(out_scale);
  return run_forward(a, q, k, v, log_a, initial_state, ep);
}

}  // namespace lm
