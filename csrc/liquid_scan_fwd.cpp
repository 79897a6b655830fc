// liquid_scan forward on CPU: chunked, numerically safe for any decay (see liquid_chunk.h).
#include "liquid_scan.h"

#include <ATen/Parallel.h>

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
      Kt(CH * dp_), KeT(dp_ * CH), KhT(dp_ * CH), A(CH * CH), O(CH * dp_), U(dp_ * dp_), acc(dp_) {}

void Workspace::prepare(int L, bool full) {
  dec.compute(LA.data(), L, full);
  const int nb = dec.nb;
  // Kt = k * exp(g_L - g_j)  (state update)
  for (int J = 0; J < nb; ++J) {
    const int s = J * BS, e = std::min(L, s + BS);
    const float* es = dec.es.data() + J * dp;
    for (int j = s; j < e; ++j) {
      const float* k = K.data() + j * dp;
      const float* er = dec.Erl.data() + j * dp;
      float* kt = Kt.data() + j * dp;
      for (int c = 0; c < dp; c += VL) st(kt + c, ld(k + c) * ld(er + c) * ld(es + c));
    }
  }
  if (!full) return;
  for (int I = 0; I < nb; ++I) {
    const int s = I * BS, e = std::min(L, s + BS);
    const float* er = dec.er.data() + I * dp;
    for (int i = s; i < e; ++i) {
      const float* q = Q.data() + i * dp;
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
  for (int j = 0; j < L; ++j) {  // KeT = (k * exp(rl))^T
    const float* k = K.data() + j * dp;
    const float* erl = dec.Erl.data() + j * dp;
    for (int c = 0; c < dp; ++c) KeT[c * CH + j] = k[c] * erl[c];
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
      const float wc = dec.wIJ(I, J)[c];
      for (int j = J * BS; j < J * BS + BS; ++j) dst[j] = src[j] * wc;
    }
  }
  gemm(e - s, s, dp, Qe.data() + s * dp, dp, 1, KhT.data(), CH, A.data() + s * CH, CH, false);
}

// Diagonal sub-block of A (lower incl. diagonal, zeros above) by element-wise exps.
void Workspace::intra_diag(int I) {
  const int s = I * BS, e = std::min(dec.L, s + BS);
  for (int j = s; j < e; ++j) {
    for (int c = 0; c < dp; ++c) acc[c] = 0.0f;
    const float* k = K.data() + j * dp;
    for (int i = j; i < e; ++i) {
      if (i > j)
        for (int c = 0; c < dp; c += VL) st(acc.data() + c, ld(acc.data() + c) + ld(LA.data() + i * dp + c));
      const float* q = Q.data() + i * dp;
      v8 sum = bc(0.0f);
      for (int c = 0; c < dp; c += VL) sum += ld(q + c) * ld(k + c) * exp_nonpos(ld(acc.data() + c));
      A[i * CH + j] = hsum(sum);
    }
    for (int i = s; i < j; ++i) A[i * CH + j] = 0.0f;
  }
}

// One chunk: O = (qe * er) S + A V;  S <- diag(egL) S + K~^T V.
void Workspace::chunk_forward(int L, float* S, float* comp, bool precision_safe, bool outputs) {
  prepare(L, outputs);
  if (outputs) {
    const int nb = dec.nb;
    gemm(L, dp, dp, Qt.data(), dp, 1, S, dp, O.data(), dp, false);  // inter-chunk term
    for (int I = 0; I < nb; ++I) {
      const int s = I * BS, e = std::min(L, s + BS);
      intra_offdiag(I);
      intra_diag(I);
      gemm(e - s, dp, e, A.data() + s * CH, CH, 1, V.data(), dp, O.data() + s * dp, dp, true);
    }
  }
  // U = K~^T V ; S <- diag(egL) S + U
  gemm(dp, dp, L, Kt.data(), 1, dp, V.data(), dp, U.data(), dp, false);
  state_update(S, comp, dec.egL.data(), U.data(), dp, precision_safe);
}

template <typename T>
static void fwd_impl(const ScanArgs& a, const T* q, const T* k, const T* v, const float* la, const float* init,
                     T* o, float* final_state) {
  const int d = a.d, dp = round_up8(d);
  const int64_t T_len = a.T, per = a.T * d;
  at::parallel_for(0, a.BH, 1, [&](int64_t begin, int64_t end) {
    DenormalGuard guard;
    Workspace ws(dp);
    std::vector<float> S(dp * dp), comp(dp * dp);
    for (int64_t bh = begin; bh < end; ++bh) {
      load_state(init ? init + bh * d * d : nullptr, d, dp, S.data());
      std::fill(comp.begin(), comp.end(), 0.0f);
      for (int64_t t0 = 0; t0 < T_len; t0 += CH) {
        const int L = static_cast<int>(std::min<int64_t>(CH, T_len - t0));
        load_rows(q + bh * per, T_len, t0, L, d, dp, a.reverse, ws.Q.data());
        load_rows(k + bh * per, T_len, t0, L, d, dp, a.reverse, ws.K.data());
        load_rows(v + bh * per, T_len, t0, L, d, dp, a.reverse, ws.V.data());
        load_rows(la + bh * per, T_len, t0, L, d, dp, a.reverse, ws.LA.data());
        ws.chunk_forward(L, S.data(), comp.data(), a.precision_safe, true);
        store_rows(ws.O.data(), T_len, t0, L, d, dp, a.reverse, o + bh * per);
      }
      store_state(S.data(), comp.data(), d, dp, final_state + bh * d * d);
    }
  });
}

std::tuple<at::Tensor, at::Tensor> liquid_scan_fwd(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                   const at::Tensor& log_a,
                                                   const std::optional<at::Tensor>& initial_state, bool reverse,
                                                   bool precision_safe) {
  ScanArgs a = check_scan_args(q, k, v, log_a, initial_state, reverse, precision_safe);
  auto qc = q.contiguous(), kc = k.contiguous(), vc = v.contiguous();
  auto lac = log_a.to(at::kFloat).contiguous();
  at::Tensor init;
  if (initial_state.has_value()) init = initial_state->to(at::kFloat).contiguous();
  auto o = at::empty_like(qc);
  auto fs = at::empty({a.B, a.H, a.d, a.d}, q.options().dtype(at::kFloat));
  const float* initp = init.defined() ? init.data_ptr<float>() : nullptr;
  LM_DISPATCH(q.scalar_type(), [&](auto tag) {
    using scalar_t = decltype(tag);
    fwd_impl<scalar_t>(a, qc.data_ptr<scalar_t>(), kc.data_ptr<scalar_t>(), vc.data_ptr<scalar_t>(),
                       lac.data_ptr<float>(), initp, o.data_ptr<scalar_t>(), fs.data_ptr<float>());
  });
  return {o, fs};
}

}  // namespace lm
