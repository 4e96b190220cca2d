// circuitscope inspect MODEL_DIR [--json]
#include <spdlog/spdlog.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "circuitscope/model.hpp"
#include "circuitscope/runtime.hpp"
#include "command.hpp"

namespace circuitscope::app {
namespace {

struct InspectOptions {
  CommonModelOptions model;
  bool json = false;
};

int run_inspect(const InspectOptions& o) {
  auto m = HookedTransformer::from_pretrained(o.model.model_dir, {o.model.dtype, o.model.device});
  const ModelConfig& c = m->config();
  nlohmann::json j = config_to_json(c);
  j["path"] = o.model.model_dir;
  j["parameters"] = m->num_parameters();
  j["stored_dtype"] = m->stored_dtype();
  j["compute_dtype"] = o.model.dtype;
  j["device"] = m->device().str();
  j["fingerprint"] = m->fingerprint();
  j["runtime"] = runtime_to_json(runtime_info());
  if (o.json) {
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  const auto& r = j["runtime"];
  std::cout << "architecture      " << c.architecture << " (" << c.arch->family << ")\n"
            << "layers            " << c.n_layers << "\n"
            << "heads             " << c.n_heads << "\n"
            << "kv heads          " << c.n_kv_heads << (c.n_kv_heads != c.n_heads ? "  (grouped-query)" : "") << "\n"
            << "head_dim          " << c.head_dim << "\n"
            << "d_model           " << c.d_model << "\n"
            << "d_mlp             " << c.d_mlp << "\n"
            << "vocab             " << c.vocab_size << "\n"
            << "parameters        " << m->num_parameters() << "\n"
            << "rope              theta=" << c.rope_theta << " scaling=" << c.rope_scaling.type << "\n"
            << "sliding window    " << (c.sliding_window > 0 ? std::to_string(c.sliding_window) : "none") << "\n"
            << "tied embeddings   " << (c.tie_word_embeddings ? "yes" : "no") << "\n"
            << "stored dtype      " << m->stored_dtype() << "\n"
            << "compute dtype     " << o.model.dtype << "\n"
            << "device            " << m->device().str() << "\n"
            << "fingerprint       " << m->fingerprint() << "\n"
            << "BLAS              " << r["blas"].get<std::string>() << " (" << r["blas_parallel"].get<std::string>()
            << ", " << r["blas_threads"].get<int>() << " threads) " << r["blas_path"].get<std::string>() << "\n"
            << "torch threads     " << r["torch_threads"].get<int>() << "\n"
            << "libtorch          " << r["torch_version"].get<std::string>()
            << (r["cuda_available"].get<bool>() ? ", CUDA devices: " + std::to_string(r["cuda_devices"].get<int>()) : ", no CUDA")
            << "\n";
  return 0;
}

CommandRegistrar reg_cmd_inspect({"inspect", "Print a checkpoint's architecture, sizes, dtypes and the runtime (BLAS, threads, device)",
                      [](CLI::App* sub) {
                        auto o = std::make_shared<InspectOptions>();
                        add_model_options(sub, o->model);
                        sub->add_flag("--json", o->json, "print JSON");
                        return [o] { return run_inspect(*o); };
                      }});

}  // namespace
}  // namespace circuitscope::app
