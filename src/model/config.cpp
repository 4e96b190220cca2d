#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <tuple>
#include <nlohmann/json.hpp>

#include "circuitscope/config.hpp"
#include "circuitscope/error.hpp"
#include "circuitscope/json_limits.hpp"

namespace circuitscope {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int64_t kMaxLayers = 4096;
constexpr int64_t kMaxHeads = 4096;
constexpr int64_t kMaxWidth = int64_t{1} << 20;  // hidden_size, intermediate_size, head_dim
constexpr int64_t kMaxVocab = int64_t{1} << 24;

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

// One rope parameter object: transformers < 5 writes "rope_scaling" (theta separate), transformers 5
// writes "rope_parameters" (theta inside). Both carry rope_type (older files: "type").
void parse_rope_params(const json& r, const std::string& source, const char* key, ModelConfig& c) {
  if (!r.is_object()) bad(source, std::string("\"") + key + "\" must be an object or null");
  std::string type = "default";
  if (r.contains("rope_type") && r["rope_type"].is_string()) type = r["rope_type"].get<std::string>();
  else if (r.contains("type") && r["type"].is_string()) type = r["type"].get<std::string>();
  if (type == "default") return;
  if (type != "linear" && type != "llama3")
    throw Error(ErrorCode::kUnsupported, source + ": " + key + " rope_type '" + type +
                                             "' is not supported; supported: default, linear, llama3");
  c.rope_scaling.type = type;
  c.rope_scaling.factor = get_num(r, source, "factor", 1.0);
  if (c.rope_scaling.factor <= 0) bad(source, std::string(key) + ".factor must be positive");
  if (type == "llama3") {
    c.rope_scaling.low_freq_factor = get_num(r, source, "low_freq_factor", 1.0);
    c.rope_scaling.high_freq_factor = get_num(r, source, "high_freq_factor", 4.0);
    c.rope_scaling.original_max_position_embeddings = get_int(r, source, "original_max_position_embeddings", 8192);
    if (c.rope_scaling.high_freq_factor <= c.rope_scaling.low_freq_factor)
      bad(source, std::string(key) + ".high_freq_factor must exceed low_freq_factor");
  }
}

void parse_rope(const json& j, const std::string& source, ModelConfig& c) {
  c.rope_theta = get_num(j, source, "rope_theta", 10000.0);
  if (j.contains("rope_parameters") && !j["rope_parameters"].is_null()) {
    c.rope_theta = get_num(j["rope_parameters"], source, "rope_theta", c.rope_theta);
    parse_rope_params(j["rope_parameters"], source, "rope_parameters", c);
  } else if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    parse_rope_params(j["rope_scaling"], source, "rope_scaling", c);
  }
}

}  // namespace

bool ModelConfig::layer_uses_sliding_window(int64_t layer) const {
  return sliding_window > 0 && layer >= 0 && layer < static_cast<int64_t>(sliding_layers.size()) && sliding_layers[layer];
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
  // Upper bounds far above any real model (the largest have about 130 layers, 16,384 wide and 256k
  // vocabularies), so that a hostile file cannot make the parser or the loader allocate per claimed
  // layer, and products of sizes cannot overflow int64.
  for (auto [name, v, most] : {std::tuple{"vocab_size", c.vocab_size, kMaxVocab}, {"hidden_size", c.d_model, kMaxWidth},
                               {"num_hidden_layers", c.n_layers, kMaxLayers}, {"num_attention_heads", c.n_heads, kMaxHeads},
                               {"num_key_value_heads", c.n_kv_heads, kMaxHeads}, {"intermediate_size", c.d_mlp, kMaxWidth}}) {
    if (v <= 0) bad(source, std::string("\"") + name + "\" must be positive; found " + std::to_string(v));
    if (v > most)
      bad(source, std::string("\"") + name + "\" is " + std::to_string(v) + "; at most " + std::to_string(most) +
                      " is supported");
  }
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
  if (c.head_dim <= 0 || c.head_dim % 2 != 0 || c.head_dim > kMaxWidth)
    bad(source, "head_dim must be a positive even number up to " + std::to_string(kMaxWidth) + "; found " +
                    std::to_string(c.head_dim));
  c.rms_norm_eps = get_num(j, source, "rms_norm_eps", 1e-6);
  parse_rope(j, source, c);
  c.tie_word_embeddings = get_bool(j, source, "tie_word_embeddings", c.arch->default_tie);
  c.qkv_bias = get_bool(j, source, "attention_bias", c.arch->qkv_bias);
  c.o_bias = j.contains("attention_bias") ? c.qkv_bias : c.arch->o_bias;
  c.qk_norm = c.arch->qk_norm;
  if (j.contains("hidden_act") && j["hidden_act"].is_string()) c.hidden_act = j["hidden_act"].get<std::string>();
  if (c.hidden_act != "silu" && c.hidden_act != "swish")
    throw Error(ErrorCode::kUnsupported, source + ": hidden_act '" + c.hidden_act + "' is not supported; supported: silu");
  if (get_bool(j, source, "mlp_bias", false))
    throw Error(ErrorCode::kUnsupported, source + ": mlp_bias=true is not supported");

  // Which layers use a sliding window: transformers 5 lists it in "layer_types"; older files follow
  // the architecture's rule.
  const bool has_window = j.contains("sliding_window") && j["sliding_window"].is_number_integer();
  const int64_t window = has_window ? j["sliding_window"].get<int64_t>() : 0;
  c.sliding_layers.assign(c.n_layers, false);
  if (j.contains("layer_types") && j["layer_types"].is_array()) {
    const json& lt = j["layer_types"];
    if (static_cast<int64_t>(lt.size()) != c.n_layers)
      bad(source, "\"layer_types\" has " + std::to_string(lt.size()) + " entries; expected num_hidden_layers = " +
                      std::to_string(c.n_layers));
    for (int64_t l = 0; l < c.n_layers; ++l) {
      const std::string t = lt[l].is_string() ? lt[l].get<std::string>() : lt[l].dump();
      if (t == "sliding_attention") c.sliding_layers[l] = true;
      else if (t != "full_attention")
        throw Error(ErrorCode::kUnsupported, source + ": layer_types[" + std::to_string(l) + "] is '" + t +
                                                 "'; supported: full_attention, sliding_attention");
    }
  } else {
    switch (c.arch->sliding) {
      case SlidingWindowRule::kNever: break;
      case SlidingWindowRule::kWhenUseSlidingWindow:
        if (get_bool(j, source, "use_sliding_window", false) && has_window) {
          const int64_t first = get_int(j, source, "max_window_layers", 0);
          for (int64_t l = first; l < c.n_layers; ++l) c.sliding_layers[l] = true;
        }
        break;
      case SlidingWindowRule::kWhenSet:
        if (has_window) c.sliding_layers.assign(c.n_layers, true);
        break;
    }
  }
  const bool any_sliding = std::find(c.sliding_layers.begin(), c.sliding_layers.end(), true) != c.sliding_layers.end();
  if (any_sliding) {
    if (window <= 0) bad(source, "sliding-window layers need a positive integer \"sliding_window\"");
    c.sliding_window = window;
  }

  if (j.contains("bos_token_id") && j["bos_token_id"].is_number_integer()) c.bos_token_id = j["bos_token_id"].get<int64_t>();
  if (j.contains("eos_token_id")) c.eos_token_ids = get_ids(j["eos_token_id"], source, "eos_token_id");
  for (const char* k : {"torch_dtype", "dtype"})
    if (j.contains(k) && j[k].is_string()) c.torch_dtype = j[k].get<std::string>();
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
    const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    check_json_depth(text, "'" + p.string() + "'");
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(ErrorCode::kFormat, "'" + p.string() + "' is not valid JSON: " + e.what());
  }
  ModelConfig c = parse_config(j, "'" + p.string() + "'");
  // generation_config.json's eos list wins: chat models add <|im_end|> there.
  const fs::path g = dir / "generation_config.json";
  std::ifstream gin(g);
  if (gin) {
    try {
      const std::string gtext{std::istreambuf_iterator<char>(gin), std::istreambuf_iterator<char>()};
      check_json_depth(gtext, "'" + g.string() + "'");
      json gj = json::parse(gtext);
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
