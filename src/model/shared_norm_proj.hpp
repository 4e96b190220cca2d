// Internal to the model: the fast path of split q/k/v inputs.
#pragma once
#include <ATen/core/Tensor.h>

namespace circuitscope {

// True when every head's copy in xs [B,T,N,D] is one tensor (stride 0 along N: the hook points
// handed the expanded residual on unchanged) and no weight wants a gradient.
bool shared_norm_proj_applies(const at::Tensor& xs, const at::Tensor& ln_w, const at::Tensor& w, const at::Tensor& b);

// rms_norm(xs) then each head's projection, [B,T,N,Dh], with ln_w [D], w [N*Dh,D], b [N*Dh] or
// undefined. Equal to the general split path, but the norm and the projection run once, as
// unsplit; gradients with respect to xs are per head. Requires shared_norm_proj_applies.
at::Tensor shared_norm_proj(const at::Tensor& xs, const at::Tensor& ln_w, const at::Tensor& w, const at::Tensor& b,
                            double eps, int64_t n, int64_t dh);

}  // namespace circuitscope
