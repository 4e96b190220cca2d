// The split-input fast path against autograd of the plain formula, on random tensors.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/autograd.h>

#include "../src/model/shared_norm_proj.hpp"
#include "test_util.hpp"

using namespace circuitscope;

TEST_CASE("shared norm+projection - values and per-head input gradients equal autograd of rms_norm then per-head linear",
          "[hooks][grad]") {
  c10::AutoGradMode grad_on(true);
  at::manual_seed(3);
  const int64_t B = 2, T = 5, N = 3, Dh = 4, D = 8;
  const double eps = 1e-6;
  const at::Tensor resid = at::randn({B, T, D}, at::kDouble).to(at::kFloat);
  const at::Tensor ln_w = at::rand({D}) + 0.5, w = at::randn({N * Dh, D}), b = at::randn({N * Dh});
  const at::Tensor go = at::randn({B, T, N, Dh});
  for (bool bias : {false, true}) {
    INFO("bias " << bias);
    // Reference: each head's own copy, normalized and projected by its rows of w.
    const at::Tensor xr = resid.unsqueeze(2).expand({B, T, N, D}).contiguous().requires_grad_(true);
    const at::Tensor xf = xr;
    const at::Tensor nrm = ln_w * (xf * at::rsqrt(xf.pow(2).mean(-1, true) + eps));
    at::Tensor ref = at::einsum("btnd,ned->btne", {nrm, w.view({N, Dh, D})});
    if (bias) ref = ref + b.view({N, Dh});
    const at::Tensor gref = torch::autograd::grad({ref}, {xr}, {go})[0];
    // Fast path on the expanded (stride-0) residual.
    const at::Tensor leaf = resid.clone().requires_grad_(true);
    const at::Tensor xs = leaf.unsqueeze(2).expand({B, T, N, D});
    const at::Tensor xa = xs.view_as(xs);
    REQUIRE(shared_norm_proj_applies(xa, ln_w, w, bias ? b : at::Tensor()));
    const at::Tensor out = shared_norm_proj(xa, ln_w, w, bias ? b : at::Tensor(), eps, N, Dh);
    const at::Tensor g = torch::autograd::grad({out}, {xa}, {go})[0];
    CHECK(at::allclose(out, ref, 1e-5, 1e-5));
    CHECK(g.sizes() == gref.sizes());
    CHECK(at::allclose(g, gref, 1e-5, 1e-5));
    INFO("max |g - gref| " << (g - gref).abs().max().item<double>());
  }
}
