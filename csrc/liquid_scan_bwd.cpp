#include "liquid_scan.h"
namespace lm {
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> liquid_scan_bwd(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& log_a,
    const std::optional<at::Tensor>& initial_state, const at::Tensor& grad_o,
    const std::optional<at::Tensor>& grad_final_state, bool reverse, bool precision_safe) {
  TORCH_CHECK(false, "not yet");
}
}
