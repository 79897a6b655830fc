// liquid_scan backward on CPU: a chunked backward (no autograd tape), chunks visited last to first.
//
// Per batch x head: (1) recompute the chunk-boundary states with the forward state pass, (2) walk
// the chunks backwards carrying dS = dL/dS_(chunk end). Per chunk (notation of liquid_chunk.h,
// A = intra-chunk matrix, dA = dO V^T masked to j <= i):
//   dq = exp(l) * [ (dO S0^T) * exp(sum_{B<I} T_B) + dA_offdiag Kh ] + diagonal-block terms
//   dk = exp(rl) * [ (V dS^T) * exp(sum_{B>J} T_B) + dA_offdiag^T Qh ] + diagonal-block terms
//   dv = A^T dO + Kt dS
//   dlog_a = reverse cumsum over the chunk of (q*dq - k*dk), plus rowsum(S1 * dS) on the last row
//   dS <- diag(exp(g_L)) dS + Qt^T dO
// The q*dq - k*dk identity is evaluated without the i == j pair (it cancels exactly), which keeps
// dlog_a accurate under strong decay.
#include <ATen/Parallel.h>

#include <atomic>

#include "liquid_scan.h"

namespace lm {
namespace {

struct BwdWorkspace : Workspace {
  const float* do_ = nullptr;  // grad_o rows of the current chunk
  std::vector<float> DO, VT, dA, X, Y, dQd, dKd, Kh, Qh, S0T, dST, dG;
  explicit BwdWorkspace(int dp_)
      : Workspace(dp_), DO(CH * dp_), VT(dp_ * CH), dA(CH * CH), X(CH * dp_), Y(CH * dp_), dQd(CH * dp_),
        dKd(CH * dp_), Kh(CH * dp_), Qh(CH * dp_), S0T(dp_ * dp_), dST(dp_ * dp_),
        dG(CH * dp_) {}

  // Diagonal sub-block I: A (lower, zero above), and the j != i parts of dq / dk.
  void diag_block(int I) {
    const int s = I * BS, e = std::min(dec.L, s + BS);
    for (int j = s; j < e; ++j) {
      const float* k = k_ + j * dp;
      const float* q = q_ + j * dp;
      v8 sum = bc(0.0f);
      for (int c = 0; c < dp; c += VL) sum += ld(q + c) * ld(k + c);
      A[j * CH + j] = hsum(sum);
      for (int i = s; i < j; ++i) A[i * CH + j] = 0.0f;
      for (int c = 0; c < dp; ++c) acc[c] = 1.0f;
      float* dkj = dKd.data() + j * dp;
      for (int i = j + 1; i < e; ++i) {
        const float* qi = q_ + i * dp;
        const float* ai = dec.Ea.data() + i * dp;
        float* dqi = dQd.data() + i * dp;
        const v8 g = bc(dA[i * CH + j]);
        v8 s8 = bc(0.0f);
        for (int c = 0; c < dp; c += VL) {
          const v8 E = ld(acc.data() + c) * ld(ai + c);  // prod_{t in (j, i]} a_t
          st(acc.data() + c, E);
          const v8 kE = ld(k + c) * E, qE = ld(qi + c) * E;
          s8 += ld(qi + c) * kE;
          st(dqi + c, ld(dqi + c) + g * kE);
          st(dkj + c, ld(dkj + c) + g * qE);
        }
        A[i * CH + j] = hsum(s8);
      }
    }
  }

  void chunk_backward(int L, const float* S0, const float* S1, float* dS, float* dScomp, bool precision_safe,
                      float* dQ, float* dK, float* dVo, float* dLA) {
    prepare(L, true);
    const int nb = dec.nb;
    std::fill(dQd.begin(), dQd.begin() + L * dp, 0.0f);
    std::fill(dKd.begin(), dKd.begin() + L * dp, 0.0f);
    transpose(v_, L, dp, dp, VT.data(), CH);
    // dA = dO V^T on the lower block triangle (N rounded up to 8: extra columns are never read)
    for (int I = 0; I < nb; ++I) {
      const int s = I * BS, e = std::min(L, s + BS);
      gemm(e - s, round_up8(e), dp, do_ + s * dp, dp, 1, VT.data(), CH, dA.data() + s * CH, CH, false);
    }
    transpose(S0, dp, dp, dp, S0T.data(), dp);
    transpose(dS, dp, dp, dp, dST.data(), dp);
    gemm(L, dp, dp, do_, dp, 1, S0T.data(), dp, X.data(), dp, false);  // dO S0^T
    gemm(L, dp, dp, v_, dp, 1, dST.data(), dp, Y.data(), dp, false);   // V dS^T
    for (int I = 0; I < nb; ++I) {
      const int s = I * BS, e = std::min(L, s + BS);
      scale_rows_by(X.data() + s * dp, dec.er.data() + I * dp, e - s);
      scale_rows_by(Y.data() + s * dp, dec.es.data() + I * dp, e - s);
      intra_offdiag(I);
      diag_block(I);
      if (I > 0) {  // dq off-diagonal: X_I += dA[I, 0:s] Kh_I,  Kh_I rows = ke_j * w_IJ
        for (int J = 0; J < I; ++J)
          for (int j = J * BS; j < J * BS + BS; ++j)
            for (int c = 0; c < dp; c += VL) st(Kh.data() + j * dp + c, ld(Ke.data() + j * dp + c) * ld(dec.wIJ(I, J) + c));
        gemm(e - s, dp, s, dA.data() + s * CH, CH, 1, Kh.data(), dp, X.data() + s * dp, dp, true);
      }
    }
    for (int J = 0; J + 1 < nb; ++J) {  // dk off-diagonal: Y_J += dA[eJ:L, J]^T Qh_J,  Qh rows = qe_i * w_IJ
      const int s = J * BS, e = s + BS;
      for (int i = e; i < L; ++i) {
        const float* w = dec.wIJ(i / BS, J);
        for (int c = 0; c < dp; c += VL) st(Qh.data() + i * dp + c, ld(Qe.data() + i * dp + c) * ld(w + c));
      }
      gemm(BS, dp, L - e, dA.data() + e * CH + s, 1, CH, Qh.data() + e * dp, dp, Y.data() + s * dp, dp, true);
    }
    // dv = A^T dO (block columns) + Kt dS
    for (int J = 0; J < nb; ++J) {
      const int s = J * BS, e = std::min(L, s + BS);
      gemm(e - s, dp, L - s, A.data() + s * CH + s, 1, CH, do_ + s * dp, dp, dVo + s * dp, dp, false);
    }
    gemm(L, dp, dp, Kt.data(), dp, 1, dS, dp, dVo, dp, true);
    // dq, dk without the i == j pair; dg = q*dq - k*dk; reverse cumsum -> dlog_a
    for (int i = 0; i < L; ++i) {
      const int o = i * dp;
      const v8 g = bc(dA[i * CH + i]);
      for (int c = 0; c < dp; c += VL) {
        const v8 dq = ld(dec.El.data() + o + c) * ld(X.data() + o + c) + ld(dQd.data() + o + c);
        const v8 dk = ld(dec.Erl.data() + o + c) * ld(Y.data() + o + c) + ld(dKd.data() + o + c);
        const v8 q = ld(q_ + o + c), k = ld(k_ + o + c);
        st(dG.data() + o + c, q * dq - k * dk);
        st(dQ + o + c, dq + g * k);
        st(dK + o + c, dk + g * q);
      }
    }
    float* last = dG.data() + (L - 1) * dp;
    for (int c = 0; c < dp; ++c) {
      v8 sum = bc(0.0f);
      for (int m = 0; m < dp; m += VL) sum += ld(S1 + c * dp + m) * ld(dS + c * dp + m);
      last[c] += hsum(sum);
    }
    for (int c = 0; c < dp; ++c) acc[c] = 0.0f;
    for (int i = L - 1; i >= 0; --i)
      for (int c = 0; c < dp; c += VL) {
        const v8 a = ld(acc.data() + c) + ld(dG.data() + i * dp + c);
        st(acc.data() + c, a);
        st(dLA + i * dp + c, a);
      }
    // dS <- diag(exp(g_L)) dS + Qt^T dO
    gemm(dp, dp, L, Qt.data(), 1, dp, do_, dp, U.data(), dp, false);
    state_update(dS, dScomp, dec.egL.data(), U.data(), dp, precision_safe);
  }

  void scale_rows_by(float* rows, const float* f, int n) {
    for (int i = 0; i < n; ++i)
      for (int c = 0; c < dp; c += VL) st(rows + i * dp + c, ld(rows + i * dp + c) * ld(f + c));
  }
};

template <typename T>
void bwd_impl(const ScanArgs& a, const T* q, const T* k, const T* v, const float* la, const float* init,
              const T* go, const float* gfinal, T* dq, T* dk, T* dv, float* dla, float* dinit, const Rows& rq,
              const Rows& rk, const Rows& rv, const Rows& rl, const Rows& rg, const Rows& ro) {
  const int d = a.d, dp = round_up8(d);
  const int64_t T_len = a.T;
  const int64_t nc = (T_len + CH - 1) / CH;
  std::atomic<bool> positive{false};
  // One task per thread; threads pull (batch, head) slabs from a shared counter so a thread that the
  // OS deschedules (busy machine) does not hold back the others as a static split would.
  std::atomic<int64_t> next{0};
  const int64_t workers = std::min<int64_t>(a.BH, at::get_num_threads());
  at::parallel_for(0, workers, 1, [&](int64_t, int64_t) {
    DenormalGuard guard;
    BwdWorkspace ws(dp);
    const int64_t sz = int64_t(dp) * dp;
    std::vector<float> states((nc + 1) * sz), S(sz), comp(sz), dS(sz), dScomp(sz);
    std::vector<float> dQ(CH * dp), dK(CH * dp), dV(CH * dp), dLA(CH * dp);
    for (int64_t bh = next++; bh < a.BH; bh = next++) {
      const bool rev = a.reverse;
      load_state(init ? init + bh * d * d : nullptr, d, dp, S.data());
      std::fill(comp.begin(), comp.end(), 0.0f);
      std::copy(S.begin(), S.end(), states.begin());
      for (int64_t n = 0; n < nc; ++n) {  // state pass: S at every chunk boundary
        const int64_t t0 = n * CH;
        const int L = static_cast<int>(std::min<int64_t>(CH, T_len - t0));
        ws.k_ = bind_rows(k + rk.off(bh), T_len, t0, L, d, dp, rev, ws.K.data(), rk.sT);
        ws.v_ = bind_rows(v + rv.off(bh), T_len, t0, L, d, dp, rev, ws.V.data(), rv.sT);
        ws.la_ = bind_rows(la + rl.off(bh), T_len, t0, L, d, dp, rev, ws.LA.data(), rl.sT);
        ws.chunk_forward(L, S.data(), comp.data(), a.precision_safe, false);
        float* dst = states.data() + (n + 1) * sz;
        for (int64_t i = 0; i < sz; ++i) dst[i] = S[i] - comp[i];
      }
      load_state(gfinal ? gfinal + bh * d * d : nullptr, d, dp, dS.data());
      std::fill(dScomp.begin(), dScomp.end(), 0.0f);
      for (int64_t n = nc - 1; n >= 0; --n) {
        const int64_t t0 = n * CH;
        const int L = static_cast<int>(std::min<int64_t>(CH, T_len - t0));
        ws.q_ = bind_rows(q + rq.off(bh), T_len, t0, L, d, dp, rev, ws.Q.data(), rq.sT);
        ws.k_ = bind_rows(k + rk.off(bh), T_len, t0, L, d, dp, rev, ws.K.data(), rk.sT);
        ws.v_ = bind_rows(v + rv.off(bh), T_len, t0, L, d, dp, rev, ws.V.data(), rv.sT);
        ws.la_ = bind_rows(la + rl.off(bh), T_len, t0, L, d, dp, rev, ws.LA.data(), rl.sT);
        ws.do_ = bind_rows(go + rg.off(bh), T_len, t0, L, d, dp, rev, ws.DO.data(), rg.sT);
        const int64_t oo = ro.off(bh), ld = ro.sT;
        float* dqp = out_rows(dq + oo, t0, d, dp, rev, dQ.data(), ld);
        float* dkp = out_rows(dk + oo, t0, d, dp, rev, dK.data(), ld);
        float* dvp = out_rows(dv + oo, t0, d, dp, rev, dV.data(), ld);
        float* dlap = out_rows(dla + oo, t0, d, dp, rev, dLA.data(), ld);
        ws.chunk_backward(L, states.data() + n * sz, states.data() + (n + 1) * sz, dS.data(), dScomp.data(),
                          a.precision_safe, dqp, dkp, dvp, dlap);
        finish_rows(dqp, T_len, t0, L, d, dp, rev, dq + oo, ld);
        finish_rows(dkp, T_len, t0, L, d, dp, rev, dk + oo, ld);
        finish_rows(dvp, T_len, t0, L, d, dp, rev, dv + oo, ld);
        finish_rows(dlap, T_len, t0, L, d, dp, rev, dla + oo, ld);
      }
      store_state(dS.data(), dScomp.data(), d, dp, dinit + bh * d * d);
    }
    if (ws.dec.positive) positive = true;
  });
  TORCH_CHECK(!positive, "liquid_scan_bwd (cpp): log_a must be <= 0 (decays in (0, 1]); got a positive value");
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> liquid_scan_bwd(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& log_a,
    const std::optional<at::Tensor>& initial_state, const at::Tensor& grad_o,
    const std::optional<at::Tensor>& grad_final_state, bool reverse, bool precision_safe) {
  ScanArgs a = check_scan_args(q, k, v, log_a, initial_state, reverse, precision_safe);
  TORCH_CHECK(grad_o.sizes() == q.sizes(), "liquid_scan_bwd (cpp): grad_o must have q's shape ", q.sizes());
  if (grad_final_state.has_value())
    TORCH_CHECK(grad_final_state->dim() == 4 && grad_final_state->size(2) == a.d &&
                    grad_final_state->size(3) == a.d && grad_final_state->size(0) == a.B &&
                    grad_final_state->size(1) == a.H,
                "liquid_scan_bwd (cpp): grad_final_state must be [B, H, d, d]");
  auto qc = channel_contiguous(q), kc = channel_contiguous(k), vc = channel_contiguous(v);
  auto goc = channel_contiguous(grad_o.to(q.scalar_type()));
  auto lac = channel_contiguous(log_a.to(at::kFloat));
  at::Tensor init, gfin;
  if (initial_state.has_value()) init = initial_state->to(at::kFloat).contiguous();
  if (grad_final_state.has_value()) gfin = grad_final_state->to(at::kFloat).contiguous();
  // gradients in q's layout family: for a [B, T, H, d] projection buffer they merge back with a free view
  auto dq = empty_in_layout(q, q.scalar_type()), dk = empty_in_layout(q, q.scalar_type());
  auto dv = empty_in_layout(q, q.scalar_type()), dla = empty_in_layout(q, at::kFloat);
  for (const at::Tensor* t : {&dq, &dk, &dv, &dla}) advise_huge_pages(*t);
  auto dinit = at::empty({a.B, a.H, a.d, a.d}, q.options().dtype(at::kFloat));
  const float* initp = init.defined() ? init.data_ptr<float>() : nullptr;
  const float* gfp = gfin.defined() ? gfin.data_ptr<float>() : nullptr;
  if (a.T == 0) {
    if (gfin.defined()) dinit.copy_(gfin); else dinit.zero_();
    return {dq, dk, dv, dla, dinit};
  }
  LM_DISPATCH(q.scalar_type(), [&](auto tag) {
    using scalar_t = decltype(tag);
    bwd_impl<scalar_t>(a, qc.data_ptr<scalar_t>(), kc.data_ptr<scalar_t>(), vc.data_ptr<scalar_t>(),
                       lac.data_ptr<float>(), initp, goc.data_ptr<scalar_t>(), gfp, dq.data_ptr<scalar_t>(),
                       dk.data_ptr<scalar_t>(), dv.data_ptr<scalar_t>(), dla.data_ptr<float>(),
                       dinit.data_ptr<float>(), rows_of(qc), rows_of(kc), rows_of(vc), rows_of(lac), rows_of(goc),
                       rows_of(dq));
  });
  return {dq, dk, dv, dla, dinit};
}

}  // namespace lm
