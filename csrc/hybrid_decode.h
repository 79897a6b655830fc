// The linearized hybrid's one-token decode step (csrc/hybrid_decode.cpp): the declaration liquid_ops.cpp registers.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <optional>

namespace lm {

// y [B, 1, H d]; updates held_keys, held_packed (the window moves by one) and state (the oldest key enters it).
at::Tensor hybrid_decode_(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& hidden,
                          at::Tensor& held_keys, at::Tensor& held_packed, const std::optional<at::Tensor>& sink_keys,
                          const std::optional<at::Tensor>& sink_values, at::Tensor& state,
                          const std::optional<at::Tensor>& valid, const at::Tensor& feature_q,
                          const at::Tensor& feature_k, const at::Tensor& down, const at::Tensor& up,
                          const at::Tensor& bias, const at::Tensor& beta, double scaling, double delta_min);

}  // namespace lm
