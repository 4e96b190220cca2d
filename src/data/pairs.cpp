// Prompt files, the shared-tokenizer check and numeric-corruption pairs (no tensors here).
#include "circuitscope/pairs.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <nlohmann/json.hpp>

#include "circuitscope/error.hpp"
#include "circuitscope/json_limits.hpp"
#include "circuitscope/tokenizer.hpp"
#include "circuitscope/toy.hpp"

namespace circuitscope {

namespace {

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

}  // namespace

std::vector<PromptItem> read_prompt_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(ErrorCode::kIo, "cannot read prompts file '" + path + "'");
  std::vector<PromptItem> items;
  std::string line;
  int64_t n = 0;
  std::optional<bool> jsonl;  // decided by the first non-blank line
  while (std::getline(in, line)) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::string t = trim(line);
    if (t.empty()) continue;
    if (!jsonl) jsonl = t.front() == '{';
    const std::string where = path + ":" + std::to_string(n) + ": ";
    PromptItem it;
    it.line = n;
    if (!*jsonl) {
      it.prompt = line;
      it.problem = line;
      items.push_back(std::move(it));
      continue;
    }
    nlohmann::json j;
    check_json_depth(t, where, false, ErrorCode::kInput);
    try {
      j = nlohmann::json::parse(t);
    } catch (const nlohmann::json::exception& e) {
      throw Error(ErrorCode::kInput, where + "not valid JSON (the file is read as JSONL because its first line is an "
                                             "object): " + std::string(e.what()));
    }
    if (!j.is_object() || !j.contains("prompt") || !j["prompt"].is_string())
      throw Error(ErrorCode::kInput, where + "expected an object with a string \"prompt\"");
    it.prompt = j["prompt"].get<std::string>();
    if (j.contains("problem")) {
      if (!j["problem"].is_string()) throw Error(ErrorCode::kInput, where + "\"problem\" must be a string");
      it.problem = j["problem"].get<std::string>();
    } else {
      it.problem = it.prompt;
    }
    if (j.contains("id")) it.id = j["id"].dump();
    if (it.prompt.empty()) throw Error(ErrorCode::kInput, where + "\"prompt\" is empty");
    items.push_back(std::move(it));
  }
  if (items.empty()) throw Error(ErrorCode::kInput, "prompts file '" + path + "' holds no prompt");
  return items;
}

void check_same_tokenizer(const Tokenizer& a, const std::string& a_name, const Tokenizer& b, const std::string& b_name,
                          const std::vector<std::string>& extra_probes) {
  const std::string both = "'" + a_name + "' and '" + b_name + "'";
  if (a.vocab_size() != b.vocab_size())
    throw Error(ErrorCode::kInput, "the models must share a tokenizer, but " + both + " have vocabularies of " +
                                       std::to_string(a.vocab_size()) + " and " + std::to_string(b.vocab_size()) +
                                       " tokens");
  for (int64_t id = 0; id < a.vocab_size(); ++id) {
    const std::string ta = a.id_to_token(id), tb = b.id_to_token(id);
    if (ta != tb || a.is_special(id) != b.is_special(id))
      throw Error(ErrorCode::kInput, "the models must share a tokenizer, but token id " + std::to_string(id) + " is '" +
                                         ta + "' in " + a_name + " and '" + tb + "' in " + b_name);
  }
  std::vector<std::string> probes = {"Hello, world! 17+25*3=92", "  two  spaces\tand\na newline",
                                     "<think>\n25*3=75\n</think>\n92", "caf\xc3\xa9 \xe2\x82\xac 12345"};
  probes.insert(probes.end(), extra_probes.begin(), extra_probes.end());
  for (const auto& p : probes) {
    if (a.encode(p, true).ids != b.encode(p, true).ids)
      throw Error(ErrorCode::kInput, "the models must share a tokenizer, but " + both + " encode '" + p +
                                         "' differently (normalizer, pre-tokenizer, merges or post-processor differ)");
  }
}

// ---- numeric corruption ----

namespace {

struct Span {
  size_t begin = 0, end = 0;
};

// The first maximal run NUMBER(OP NUMBER)+ in s.
std::optional<Span> find_expression(const std::string& s) {
  auto digit = [&](size_t i) { return i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])); };
  auto op = [&](size_t i) { return i < s.size() && (s[i] == '+' || s[i] == '-' || s[i] == '*'); };
  for (size_t i = 0; i < s.size(); ++i) {
    if (!digit(i) || (i > 0 && digit(i - 1))) continue;
    size_t j = i;
    while (digit(j)) ++j;
    size_t end = j;
    int n_ops = 0;
    while (op(end) && digit(end + 1)) {
      size_t k = end + 1;
      while (digit(k)) ++k;
      end = k;
      ++n_ops;
    }
    if (n_ops > 0) return Span{i, end};
  }
  return std::nullopt;
}

int digits(int64_t v) { return static_cast<int>(std::to_string(v).size()); }

std::string first_unit(const std::string& text, const Tokenizer* tok) {
  if (tok) {
    const auto ids = tok->encode(text, /*add_special_tokens=*/false).ids;
    return ids.empty() ? "" : std::to_string(ids.front());
  }
  return text.substr(0, 1);
}

}  // namespace

std::optional<NumericPair> make_numeric_pair(const std::string& prompt, const NumericPairOptions& opts,
                                             std::mt19937_64& rng, const Tokenizer* tok) {
  const auto span = find_expression(prompt);
  if (!span)
    throw Error(ErrorCode::kInput, "'" + prompt + "' holds no arithmetic expression such as 17+25*3 (numbers joined by + - *)");
  const std::string expr = prompt.substr(span->begin, span->end - span->begin);
  const toy::ArithProblem clean = toy::parse_problem(expr);
  const int64_t clean_answer = clean.answer();
  const std::string answer = std::to_string(clean_answer);
  const std::string answer_first = first_unit(answer, tok);

  int64_t max_value = opts.max_operand;
  if (max_value < 0) max_value = std::max<int64_t>(9, *std::max_element(clean.operands.begin(), clean.operands.end()));

  // Candidates (operand index, new value): same digit count first (so clean and corrupted keep
  // their token count), then the rest; each group in random order.
  std::vector<std::pair<size_t, int64_t>> same, other;
  for (size_t i = 0; i < clean.operands.size(); ++i)
    for (int64_t v = 0; v <= max_value; ++v) {
      if (v == clean.operands[i]) continue;
      (digits(v) == digits(clean.operands[i]) ? same : other).emplace_back(i, v);
    }
  std::shuffle(same.begin(), same.end(), rng);
  std::shuffle(other.begin(), other.end(), rng);
  same.insert(same.end(), other.begin(), other.end());

  for (const auto& [i, v] : same) {
    toy::ArithProblem c = clean;
    c.operands[i] = v;
    const std::string wrong = std::to_string(c.answer());
    if (wrong == answer || first_unit(wrong, tok) == answer_first) continue;
    NumericPair p;
    p.clean_problem = expr;
    p.corrupted_problem = c.text();
    p.clean = prompt;
    p.corrupted = prompt.substr(0, span->begin) + p.corrupted_problem + prompt.substr(span->end);
    p.answer = answer;
    p.wrong = wrong;
    p.operand_index = static_cast<int64_t>(i);
    return p;
  }
  return std::nullopt;
}

}  // namespace circuitscope
