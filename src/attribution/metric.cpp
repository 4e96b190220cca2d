#include "circuitscope/metric.hpp"

#include <ATen/ATen.h>

#include "circuitscope/error.hpp"
#include "circuitscope/model.hpp"
#include "core/enum_names.hpp"

namespace circuitscope {

namespace {
constexpr detail::NameTable<MetricKind, 5> kMetricNames = {{{MetricKind::kLogitDiff, "logit-diff"},
                                                            {MetricKind::kProbDiff, "prob-diff"},
                                                            {MetricKind::kKl, "kl"},
                                                            {MetricKind::kSeqLogprob, "seq-logprob"},
                                                            {MetricKind::kSeqKl, "seq-kl"}}};
}  // namespace

MetricKind parse_metric(const std::string& s) { return detail::parse_name(kMetricNames, s, "metric"); }
const char* metric_name(MetricKind m) { return detail::name_of(kMetricNames, m); }

at::Tensor metric_positions(const AttributionBatch& b, const at::Device& dev) {
  const int64_t B = b.clean_ids.size(0), T = b.clean_ids.size(1);
  if (b.positions.defined()) return b.positions.to(dev, at::kLong);
  if (!b.attention_mask.defined()) return at::full({B}, T - 1, at::TensorOptions().dtype(at::kLong).device(dev));
  // Last real position: argmax of mask * index.
  at::Tensor idx = at::arange(T, at::TensorOptions().dtype(at::kLong).device(dev));
  return (b.attention_mask.to(dev, at::kLong) * idx).argmax(1);
}

namespace {
at::Tensor rows_at(const at::Tensor& logits, const at::Tensor& pos) {  // [B,T,V] -> [B,V] float32
  const int64_t B = logits.size(0), V = logits.size(2);
  return logits.gather(1, pos.view({B, 1, 1}).expand({B, 1, V})).squeeze(1).to(at::kFloat);
}

}  // namespace

bool is_sequence_metric(MetricKind m) { return m == MetricKind::kSeqLogprob || m == MetricKind::kSeqKl; }
bool metric_needs_answer(MetricKind m) { return m == MetricKind::kLogitDiff || m == MetricKind::kProbDiff; }

void check_metric_batch(const HookedTransformer& model, const AttributionBatch& b, MetricKind metric) {
  if (!b.clean_ids.defined() || !b.corrupted_ids.defined() || b.clean_ids.dim() != 2 ||
      b.clean_ids.sizes() != b.corrupted_ids.sizes())
    throw Error(ErrorCode::kInput, "attribution batch: clean_ids and corrupted_ids must both be [B,T] of one shape (pad the "
                                   "shorter one); found " +
                                       (b.clean_ids.defined() ? shape_str(b.clean_ids.sizes()) : std::string("none")) +
                                       " and " +
                                       (b.corrupted_ids.defined() ? shape_str(b.corrupted_ids.sizes()) : std::string("none")));
  const int64_t B = b.clean_ids.size(0);
  for (const auto& [name, t] : {std::pair<const char*, const at::Tensor*>{"attention_mask", &b.attention_mask},
                                {"corrupted_mask", &b.corrupted_mask}})
    if (t->defined() && t->sizes() != b.clean_ids.sizes())
      throw Error(ErrorCode::kInput, std::string("attribution batch: ") + name + " has shape " + shape_str(t->sizes()) +
                                         "; expected " + shape_str(b.clean_ids.sizes()));
  if (metric_needs_answer(metric)) {
    if (!b.answer_ids.defined() || !b.wrong_ids.defined() || b.answer_ids.numel() != B || b.wrong_ids.numel() != B)
      throw Error(ErrorCode::kInput, std::string("attribution batch: metric ") + metric_name(metric) +
                                         " needs answer_ids and wrong_ids with one id per example (" + std::to_string(B) + ")");
    const int64_t V = model.config().vocab_size;
    for (const at::Tensor* t : {&b.answer_ids, &b.wrong_ids}) {
      at::Tensor c = t->to(at::kCPU, at::kLong);
      if ((c < 0).logical_or(c >= V).any().item<bool>())
        throw Error(ErrorCode::kInput, "attribution batch: answer/wrong id out of range: vocab_size is " + std::to_string(V));
    }
  }
  if (is_sequence_metric(metric)) {
    if (!b.target_ids.defined() || !b.target_mask.defined() || b.target_ids.sizes() != b.clean_ids.sizes() ||
        b.target_mask.sizes() != b.clean_ids.sizes())
      throw Error(ErrorCode::kInput, std::string("attribution batch: metric ") + metric_name(metric) +
                                         " needs target_ids and target_mask of shape " + shape_str(b.clean_ids.sizes()) +
                                         " (pairs with a clean continuation)");
    const at::Tensor n = b.target_mask.to(at::kCPU).ne(0).sum(1);
    if ((n == 0).any().item<bool>())
      throw Error(ErrorCode::kInput, std::string("attribution batch: metric ") + metric_name(metric) +
                                         " needs at least one supervised position in every example");
    const at::Tensor t = b.target_ids.to(at::kCPU, at::kLong);
    if ((t < 0).logical_or(t >= model.config().vocab_size).any().item<bool>())
      throw Error(ErrorCode::kInput, "attribution batch: target id out of range: vocab_size is " +
                                         std::to_string(model.config().vocab_size));
  }
}

at::Tensor metric_per_example(MetricKind kind, const at::Tensor& logits, const AttributionBatch& batch,
                              const at::Tensor& clean_logits) {
  if ((kind == MetricKind::kKl || kind == MetricKind::kSeqKl) && !clean_logits.defined())
    throw Error(ErrorCode::kInternal, std::string("metric ") + metric_name(kind) + " needs the clean run's logits as reference");
  if (is_sequence_metric(kind)) {
    if (!batch.target_ids.defined() || !batch.target_mask.defined())
      throw Error(ErrorCode::kInput, std::string("metric ") + metric_name(kind) + " needs target_ids and target_mask");
    const auto dev = logits.device();
    const at::Tensor tm = batch.target_mask.to(dev).ne(0);  // [B,T]
    const at::Tensor n = tm.sum(1);
    if ((n == 0).any().item<bool>())
      throw Error(ErrorCode::kInput, std::string("metric ") + metric_name(kind) + ": an example has no supervised position");
    // Only the span of supervised positions goes through log_softmax ([B,span,V] in float32).
    const at::Tensor any_t = tm.any(0).nonzero().view(-1);
    const int64_t t0 = any_t.min().item<int64_t>(), span = any_t.max().item<int64_t>() - t0 + 1;
    const at::Tensor lp = at::log_softmax(logits.narrow(1, t0, span).to(at::kFloat), -1);
    at::Tensor v;  // [B,span]
    if (kind == MetricKind::kSeqLogprob) {
      v = lp.gather(2, batch.target_ids.to(dev, at::kLong).narrow(1, t0, span).unsqueeze(2)).squeeze(2);
    } else {
      const at::Tensor lpc = at::log_softmax(clean_logits.detach().narrow(1, t0, span).to(at::kFloat), -1);
      v = (lpc.exp() * (lpc - lp)).sum(-1);
    }
    const at::Tensor w = tm.narrow(1, t0, span).to(at::kFloat);
    return (v * w).sum(1) / n.to(at::kFloat);
  }
  const at::Tensor pos = metric_positions(batch, logits.device());
  const at::Tensor last = rows_at(logits, pos);  // [B,V]
  const int64_t B = last.size(0);
  switch (kind) {
    case MetricKind::kLogitDiff:
    case MetricKind::kProbDiff: {
      at::Tensor v = kind == MetricKind::kProbDiff ? at::softmax(last, -1) : last;
      at::Tensor a = batch.answer_ids.to(v.device(), at::kLong).view({B, 1});
      at::Tensor w = batch.wrong_ids.to(v.device(), at::kLong).view({B, 1});
      return (v.gather(1, a) - v.gather(1, w)).squeeze(1);
    }
    case MetricKind::kKl: {
      at::Tensor lp = at::log_softmax(last, -1);
      at::Tensor lpc = at::log_softmax(rows_at(clean_logits.detach(), pos), -1);
      return (lpc.exp() * (lpc - lp)).sum(-1);
    }
    default: break;
  }
  throw Error(ErrorCode::kInternal, "unknown metric");
}

}  // namespace circuitscope
