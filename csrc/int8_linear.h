// Weight-only int8 matmul for few rows (csrc/int8_linear.cpp): the declaration liquid_ops.cpp registers.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

namespace lm {

// y [M, N] = (x [M, K] @ qweight[N, K]^T) * scale[N] (+ bias[N]), fp32 accumulation, y in x's dtype.
// portable: take the generic vector path even where AVX-512 is available (tests compare the two).
at::Tensor int8_linear(const at::Tensor& x, const at::Tensor& qweight, const at::Tensor& scale,
                       const std::optional<at::Tensor>& bias, bool portable);

}  // namespace lm
