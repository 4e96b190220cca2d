#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "circuitscope/config.hpp"
#include "circuitscope/error.hpp"

namespace circuitscope {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

[[noreturn]] void bad(const std::string& source, const std::string& what) {
  throw Error(ErrorCode::kConfig, source + ": " + what);
}

int64_t get_int(const json& j, const std::string& source, const char* key, std::optional<int64_t> def = std::nullopt) {
  if (!j.contains(key) || j[key].is_null()) {
    if (def) return *def;
    bad(source, std::string("missing required key \"") + key + "\"");
  }
  if (!j[key].is_number_integer())
    bad(source, std::string("key \"") + key + "\" must be an integer; found " + j[key].dump());
  return j[key].get<int64_t>();
}

double get_num(const json& j, const std::string& source, const char* key, double def) {
  if (!j.contains(key) || j[key].is_null()) return def;
  if (!j[key].is_number()) bad(source, std::string("key \"") + key + "\" must be a number; found " + j[key].dump());
  return j[key].get<double>();
}

bool get_bool(const json& j, const std::string& source, const char* key, bool def) {
  if (!j.contains(key) || j[key].is_null()) return def;
  if (!j[key].is_boolean()) bad(source, std::string("key \"") + key + "\" must be true or false; found " + j[key].dump());
  return j[key].get<bool>();
}

std::vector<int64_t> get_ids(const json& v, const std::string& source, const char* key) {
  std::vector<int64_t> out;
  if (v.is_null()) return out;
  if (v.is_number_integer()) return {v.get<int64_t>()};
  if (v.is_array()) {
    for (const auto& x : v) {
      if (!x.is_number_integer()) bad(source, std::string("\"") + key + "\" entries must be integers");
      out.push_back(x.get<int64_t>());
    }
    return out;
  }
  bad(source, std::string("\"") + key + "\" must be an integer or a list of integers");
}

void parse_rope_scaling(const json& j, const std::string& source, ModelConfig& c) {
  if (!j.contains("rope_scaling") || j["rope_scaling"].is_null()) return;
  const json& r = j["rope_scaling"];
  if (!r.is_object()) bad(source, "\"rope_scaling\" must be an object or null");
  std::string type;
  if (r.contains("rope_type") && r["rope_type"].is_string()) type = r["rope_type"].get<std::string>();
  else if (r.contains("type") && r["type"].is_string()) type = r["type"].get<std::string>();
  if (type == "default") return;
  if (type != "linear" && type != "llama3")
    throw Error(ErrorCode::kUnsupported, source + ": rope_scaling type '" + type +
                                             "' is not supported; supported: linear, llama3 (or null)");
  c.rope_scaling.type = type;
  c.rope_scaling.factor = get_num(r, source, "factor", 1.0);
  if (c.rope_scaling.factor <= 0) bad(source, "rope_scaling.factor must be positive");
  if (type == "llama3") {
    c.rope_scaling.low_freq_factor = get_num(r, source, "low_freq_factor", 1.0);
    c.rope_scaling.high_freq_factor = get_num(r, source, "high_freq_factor", 4.0);
    c.rope_scaling.original_max_position_embeddings = get_int(r, source, "original_max_position_embeddings", 8192);
    if (c.rope_scaling.high_freq_factor <= c.rope_scaling.low_freq_factor)
      bad(source, "rope_scaling.high_freq_factor must exceed low_freq_factor");
  }
}

}  // namespace

bool ModelConfig::layer_uses_sliding_window(int64_t layer) const {
  return sliding_window > 0 && layer >= max_window_layers;
}

std::string ModelConfig::tensor_name(const char* tmpl, int64_t layer) const {
  std::string s(tmpl);
  const auto p = s.find("{l}");
  if (p != std::string::npos) s.replace(p, 3, std::to_string(layer));
  return s;
}

ModelConfig parse_config(const json& j, const std::string& source) {
  if (!j.is_object()) bad(source, "expected a JSON object");
  ModelConfig c;
  if (!j.contains("architectures") || !j["architectures"].is_array() || j["architectures"].empty() ||
      !j["architectures"][0].is_string())
    bad(source, "missing \"architectures\" (a list naming the model class, e.g. [\"Qwen2ForCausalLM\"])");
  c.architecture = j["architectures"][0].get<std::string>();
  c.arch = find_architecture(c.architecture);
  if (!c.arch) {
    std::string known;
    for (const auto& a : architecture_table()) known += (known.empty() ? "" : ", ") + std::string(a.hf_name);
    throw Error(ErrorCode::kUnsupported, source + ": architecture '" + c.architecture + "' is not supported; supported: " + known);
  }
  c.vocab_size = get_int(j, source, "vocab_size");
  c.d_model = get_int(j, source, "hidden_size");
  c.n_layers = get_int(j, source, "num_hidden_layers");
  c.n_heads = get_int(j, source, "num_attention_heads");
  c.n_kv_heads = get_int(j, source, "num_key_value_heads", c.n_heads);
  c.d_mlp = get_int(j, source, "intermediate_size");
  c.max_position_embeddings = get_int(j, source, "max_position_embeddings", 32768);
  for (auto [name, v] : {std::pair{"vocab_size", c.vocab_size}, {"hidden_size", c.d_model}, {"num_hidden_layers", c.n_layers},
                          {"num_attention_heads", c.n_heads}, {"num_key_value_heads", c.n_kv_heads},
                          {"intermediate_size", c.d_mlp}})
    if (v <= 0) bad(source, std::string("\"") + name + "\" must be positive; found " + std::to_string(v));
  if (c.n_heads % c.n_kv_heads != 0)
    bad(source, "num_attention_heads (" + std::to_string(c.n_heads) + ") must be a multiple of num_key_value_heads (" +
                    std::to_string(c.n_kv_heads) + ")");
  if (j.contains("head_dim") && !j["head_dim"].is_null()) {
    c.head_dim = get_int(j, source, "head_dim");
  } else {
    if (c.d_model % c.n_heads != 0)
      bad(source, "hidden_size (" + std::to_string(c.d_model) + ") is not divisible by num_attention_heads (" +
                      std::to_string(c.n_heads) + ") and no head_dim is given");
    c.head_dim = c.d_model / c.n_heads;
  }
  if (c.head_dim <= 0 || c.head_dim % 2 != 0) bad(source, "head_dim must be a positive even number; found " + std::to_string(c.head_dim));
  c.rms_norm_eps = get_num(j, source, "rms_norm_eps", 1e-6);
  c.rope_theta = get_num(j, source, "rope_theta", 10000.0);
  parse_rope_scaling(j, source, c);
  c.tie_word_embeddings = get_bool(j, source, "tie_word_embeddings", c.arch->default_tie);
  c.qkv_bias = get_bool(j, source, "attention_bias", c.arch->qkv_bias);
  c.o_bias = j.contains("attention_bias") ? c.qkv_bias : c.arch->o_bias;
  c.qk_norm = c.arch->qk_norm;
  if (j.contains("hidden_act") && j["hidden_act"].is_string()) c.hidden_act = j["hidden_act"].get<std::string>();
  if (c.hidden_act != "silu" && c.hidden_act != "swish")
    throw Error(ErrorCode::kUnsupported, source + ": hidden_act '" + c.hidden_act + "' is not supported; supported: silu");
  if (get_bool(j, source, "mlp_bias", false))
    throw Error(ErrorCode::kUnsupported, source + ": mlp_bias=true is not supported");

  const bool has_window = j.contains("sliding_window") && j["sliding_window"].is_number_integer();
  switch (c.arch->sliding) {
    case SlidingWindowRule::kNever: break;
    case SlidingWindowRule::kWhenUseSlidingWindow:
      if (get_bool(j, source, "use_sliding_window", false) && has_window) {
        c.sliding_window = j["sliding_window"].get<int64_t>();
        c.max_window_layers = get_int(j, source, "max_window_layers", 0);
      }
      break;
    case SlidingWindowRule::kWhenSet:
      if (has_window) c.sliding_window = j["sliding_window"].get<int64_t>();
      break;
  }
  if (c.sliding_window < 0) bad(source, "sliding_window must be positive");

  if (j.contains("bos_token_id") && j["bos_token_id"].is_number_integer()) c.bos_token_id = j["bos_token_id"].get<int64_t>();
  if (j.contains("eos_token_id")) c.eos_token_ids = get_ids(j["eos_token_id"], source, "eos_token_id");
  if (j.contains("torch_dtype") && j["torch_dtype"].is_string()) c.torch_dtype = j["torch_dtype"].get<std::string>();
  return c;
}

ModelConfig load_config(const std::string& model_dir) {
  const fs::path dir(model_dir);
  if (!fs::is_directory(dir)) throw Error(ErrorCode::kIo, "model directory '" + model_dir + "' does not exist");
  const fs::path p = dir / "config.json";
  std::ifstream in(p);
  if (!in) throw Error(ErrorCode::kIo, "cannot read '" + p.string() + "': a Hugging Face model directory needs config.json");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    throw Error(ErrorCode::kFormat, "'" + p.string() + "' is not valid JSON: " + e.what());
  }
  ModelConfig c = parse_config(j, "'" + p.string() + "'");
  // generation_config.json's eos list wins: chat models add <|im_end|> there.
  const fs::path g = dir / "generation_config.json";
  std::ifstream gin(g);
  if (gin) {
    try {
      json gj = json::parse(gin);
      if (gj.contains("eos_token_id")) {
        auto ids = get_ids(gj["eos_token_id"], "'" + g.string() + "'", "eos_token_id");
        if (!ids.empty()) c.eos_token_ids = ids;
      }
    } catch (const json::exception& e) {
      throw Error(ErrorCode::kFormat, "'" + g.string() + "' is not valid JSON: " + e.what());
    }
  }
  return c;
}

json config_to_json(const ModelConfig& c) {
  json j = {{"architecture", c.architecture},
            {"family", c.arch ? c.arch->family : ""},
            {"vocab_size", c.vocab_size},
            {"d_model", c.d_model},
            {"n_layers", c.n_layers},
            {"n_heads", c.n_heads},
            {"n_kv_heads", c.n_kv_heads},
            {"head_dim", c.head_dim},
            {"d_mlp", c.d_mlp},
            {"rms_norm_eps", c.rms_norm_eps},
            {"rope_theta", c.rope_theta},
            {"rope_scaling", c.rope_scaling.type},
            {"tie_word_embeddings", c.tie_word_embeddings},
            {"sliding_window", c.sliding_window},
            {"max_position_embeddings", c.max_position_embeddings}};
  return j;
}

}  // namespace circuitscope
