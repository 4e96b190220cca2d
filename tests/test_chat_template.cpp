// Chat templates and the Jinja engine, against references rendered by Jinja2 3.1.6 in Hugging
// Face's environment (tests/data/chat/README.md says how each file was made), plus hand-worked
// cases, tokenizer_config.json handling and the chat-format command.
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

#include "circuitscope/chat_template.hpp"
#include "circuitscope/error.hpp"

using circuitscope::ChatMessage;
using circuitscope::Error;
using circuitscope::ErrorCode;
using circuitscope::JinjaTemplate;
using circuitscope::render_template;
using nlohmann::ordered_json;
namespace fs = std::filesystem;

namespace {

const std::string kChatDir = std::string(CS_TEST_DATA_DIR) + "/chat";

std::vector<ordered_json> read_jsonl_ordered(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  std::vector<ordered_json> rows;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) rows.push_back(ordered_json::parse(line));
  return rows;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::optional<bool> thinking_of(const ordered_json& row) {
  if (!row.contains("enable_thinking")) return std::nullopt;
  return row["enable_thinking"].get<bool>();
}

// Renders and returns the text, or "<error>: message" so mismatches show both sides.
struct Outcome {
  bool ok = false;
  std::string text;
  ErrorCode code = ErrorCode::kInternal;
  bool at_parse = false;
};

Outcome run(const std::string& tpl, const ordered_json& ctx, const std::string& name = "template") {
  Outcome o;
  std::unique_ptr<JinjaTemplate> t;
  try {
    t = std::make_unique<JinjaTemplate>(tpl, name);
  } catch (const Error& e) {
    o.text = e.what();
    o.code = e.code();
    o.at_parse = true;
    return o;
  }
  try {
    o.text = t->render(ctx);
    o.ok = true;
  } catch (const Error& e) {
    o.text = e.what();
    o.code = e.code();
  }
  return o;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// A scratch model directory with the given tokenizer_config.json text.
struct TempModelDir {
  fs::path path;
  explicit TempModelDir(const std::string& config_text, const char* tag) {
    path = fs::temp_directory_path() / ("cs_chat_" + std::string(tag) + "_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
    std::ofstream(path / "tokenizer_config.json") << config_text;
  }
  ~TempModelDir() { fs::remove_all(path); }
};

std::string run_chat_format(const std::string& args, int* status) {
  std::string cmd = std::string(CS_BINARY_PATH) + " -q chat-format " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int rc = ::pclose(p);
  *status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  return out;
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

}  // namespace

// ---- the model's own template, byte for byte ------------------------------------------------

TEST_CASE("Qwen3 chat template matches Jinja2 on every reference row", "[chat]") {
  auto cfg = circuitscope::load_tokenizer_config(kChatDir + "/qwen3");
  REQUIRE(cfg.chat_template.has_value());
  auto rows = read_jsonl_ordered(kChatDir + "/qwen3/chat_template_reference.jsonl");
  REQUIRE(rows.size() == 24);
  int matched = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& row = rows[i];
    INFO("row " << i);
    std::string got = circuitscope::apply_chat_template_json(cfg, row["messages"], row["add_generation_prompt"].get<bool>(),
                                                             thinking_of(row));
    CHECK(got == row["text"].get<std::string>());
    matched += got == row["text"].get<std::string>();
  }
  CHECK(matched == 24);
}

TEST_CASE("Qwen3 reference rows through the ChatMessage API", "[chat]") {
  auto cfg = circuitscope::load_tokenizer_config(kChatDir + "/qwen3");
  for (const auto& row : read_jsonl_ordered(kChatDir + "/qwen3/chat_template_reference.jsonl")) {
    std::vector<ChatMessage> msgs;
    for (const auto& m : row["messages"]) {
      ChatMessage c;
      c.role = m["role"].get<std::string>();
      c.content = m["content"].get<std::string>();
      msgs.push_back(c);
    }
    CHECK(circuitscope::apply_chat_template(cfg, msgs, row["add_generation_prompt"].get<bool>(), thinking_of(row)) ==
          row["text"].get<std::string>());
  }
}

// ---- other families and more Qwen3 conversations (tools, reasoning_content) -------------------

TEST_CASE("Chat templates of other families match Jinja2", "[chat]") {
  auto rows = read_jsonl_ordered(kChatDir + "/families_reference.jsonl");
  REQUIRE(rows.size() >= 100);
  auto qwen3 = circuitscope::load_tokenizer_config(kChatDir + "/qwen3");
  std::set<std::string> families;
  int matched = 0, errors = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& row = rows[i];
    const std::string tname = row["template"].get<std::string>();
    INFO("row " << i << ": " << tname << " / " << row["conversation"].get<std::string>()
                << " add_generation_prompt=" << row["add_generation_prompt"] << " enable_thinking="
                << (row.contains("enable_thinking") ? row["enable_thinking"].dump() : "absent"));
    families.insert(tname);
    circuitscope::TokenizerConfig cfg;
    cfg.path = "test";
    const auto& tok = row["special_tokens"];
    if (tok.contains("bos_token")) cfg.bos_token = tok["bos_token"].get<std::string>();
    if (tok.contains("eos_token")) cfg.eos_token = tok["eos_token"].get<std::string>();
    if (tok.contains("unk_token")) cfg.unk_token = tok["unk_token"].get<std::string>();
    if (tok.contains("pad_token")) cfg.pad_token = tok["pad_token"].get<std::string>();
    const std::string source =
        tname == "qwen3" ? *qwen3.chat_template : slurp(kChatDir + "/templates/" + tname + ".jinja");
    ordered_json extra = ordered_json::object();
    if (row.contains("tools")) extra["tools"] = row["tools"];
    std::string got;
    bool threw = false;
    std::string what;
    try {
      got = circuitscope::apply_chat_template_json(cfg, row["messages"], row["add_generation_prompt"].get<bool>(),
                                                   thinking_of(row), &source, &extra);
    } catch (const Error& e) {
      threw = true;
      what = e.what();
      CHECK(e.code() == ErrorCode::kInput);
    }
    if (row.contains("text")) {
      INFO(what);
      CHECK_FALSE(threw);
      CHECK(got == row["text"].get<std::string>());
      matched += !threw && got == row["text"].get<std::string>();
    } else {
      // Only raise_exception failures are expected here; the message must come through verbatim.
      REQUIRE(row["error"] == "TemplateError");
      CHECK(threw);
      CHECK(contains(what, row["message"].get<std::string>()));
      errors += threw && contains(what, row["message"].get<std::string>());
    }
  }
  CHECK(families == std::set<std::string>{"llama3", "llama3_1", "mistral_v0_3", "deepseek_r1_distill", "qwen2_5",
                                          "gemma3", "qwen3"});
  CHECK(matched + errors == static_cast<int>(rows.size()));
}

// ---- engine features against Jinja2 -----------------------------------------------------------

TEST_CASE("Jinja engine matches Jinja2 on the engine reference", "[chat]") {
  auto rows = read_jsonl_ordered(kChatDir + "/engine_reference.jsonl");
  REQUIRE(rows.size() >= 130);
  // Errors whose wording differs from Jinja2's on purpose (the class of failure and, for syntax
  // errors, the line still have to match).
  const std::set<std::string> wording_differs = {
      "err_syntax_unclosed_var",     // Jinja: "unexpected end of template, expected 'end of print statement'."
      "err_syntax_break_outside",    // Jinja fails in Python's compiler ("'break' outside loop")
  };
  const std::set<std::string> syntax_classes = {"TemplateSyntaxError", "TemplateAssertionError", "SyntaxError"};
  for (const auto& row : rows) {
    const std::string name = row["name"].get<std::string>();
    INFO(name << "\ntemplate: " << row["template"].get<std::string>());
    Outcome o = run(row["template"].get<std::string>(), row["context"], name);
    if (row.contains("text")) {
      INFO("error: " << (o.ok ? "" : o.text));
      CHECK(o.ok);
      CHECK(o.text == row["text"].get<std::string>());
      continue;
    }
    const std::string cls = row["error"].get<std::string>();
    const std::string jinja_msg = row["message"].get<std::string>();
    INFO("Jinja2: " << cls << ": " << jinja_msg << "\nours: " << o.text);
    REQUIRE_FALSE(o.ok);
    if (syntax_classes.count(cls)) {
      CHECK(o.at_parse);
      CHECK((o.code == ErrorCode::kFormat));
      if (row.contains("lineno")) CHECK(contains(o.text, ", line " + std::to_string(row["lineno"].get<int>()) + ", column "));
    } else {
      CHECK_FALSE(o.at_parse);
      CHECK((o.code == ErrorCode::kInput));
    }
    if (!wording_differs.count(name)) CHECK(contains(o.text, jinja_msg));
    CHECK(contains(o.text, ", column "));
  }
}

// ---- hand-worked cases ----------------------------------------------------------------------------

TEST_CASE("Hand-worked renders", "[chat]") {
  ordered_json msgs = ordered_json::parse(
      R"([{"role":"system","content":"S"},{"role":"user","content":"U"},{"role":"assistant","content":"A"}])");
  // loop.index and loop.last
  CHECK(render_template("{% for m in messages %}{{ loop.index }}:{{ m.role }}{% if not loop.last %},{% endif %}{% endfor %}",
                        {{"messages", msgs}}) == "1:system,2:user,3:assistant");
  // trim_blocks drops the newline after each tag; lstrip_blocks has nothing to strip here.
  CHECK(render_template("Hello\n{% if x %}\n  yes\n{% endif %}\nbye", {{"x", true}}) == "Hello\n  yes\nbye");
  // lstrip_blocks removes the indentation before an indented tag, trim_blocks the newline after it.
  CHECK(render_template("<\n    {% if true %}\n    in\n    {% endif %}\n>", ordered_json::object()) == "<\n    in\n>");
  // `-` strips all whitespace, newlines included, on its side only.
  CHECK(render_template("a  \n  {{- 'b' }}  \n  c", ordered_json::object()) == "ab  \n  c");
  // A namespace carries state out of a loop; a plain set does not.
  CHECK(render_template("{% set ns = namespace(n=0) %}{% set m = 0 %}{% for x in [1, 2, 3] %}{% set ns.n = ns.n + x %}"
                        "{% set m = m + x %}{% endfor %}{{ ns.n }}/{{ m }}",
                        ordered_json::object()) == "6/0");
  // Filters chain left to right; `~` stringifies.
  CHECK(render_template("{{ 'a,b'|replace(',', ';')|upper ~ 1 }}", ordered_json::object()) == "A;B1");
  // Negative indexes and reversed slices.
  CHECK(render_template("{{ messages[-1].role }} {{ (messages[::-1]|first).content }} {{ 'abc'[::-1] }}",
                        {{"messages", msgs}}) == "assistant A cba");
  // Integer arithmetic stays integral; `/` is true division.
  CHECK(render_template("{{ (messages|length - 1) * 2 }} {{ 7 // 2 }} {{ 7 / 2 }} {{ 7 % 4 }}", {{"messages", msgs}}) ==
        "4 3 3.5 3");
  // Undefined prints as empty, is falsy, and takes a default.
  CHECK(render_template("[{{ nope }}]{% if nope %}T{% else %}F{% endif %}{{ nope|default('d') }}{{ nope is defined }}",
                        ordered_json::object()) == "[]FdFalse");
  // A dict key that is absent is undefined, not an error; None prints as None.
  CHECK(render_template("[{{ m.reasoning_content }}]{{ m.content }}", {{"m", {{"content", nullptr}}}}) == "[]None");
}

TEST_CASE("Integers beyond 64 bits are an error and not undefined behaviour", "[chat]") {
  // Python's ints have no bound; ours are int64. Found by the fuzzer (UBSan: 1.41312e+19 converted
  // to long in `|int`).
  auto unsupported = [](const std::string& tmpl, const std::string& needle) {
    INFO(tmpl);
    try {
      (void)render_template(tmpl, {{"xs", ordered_json::parse(R"([{"a": 1}])")}});
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::kUnsupported);
      CHECK(contains(e.what(), needle));
    }
  };
  unsupported("{{ 1.5e19|int }}", "beyond 64 bits");
  unsupported("{{ -9.3e18|int }}", "beyond 64 bits");
  unsupported("{{ '14131211109876543210.5'|int }}", "beyond 64 bits");
  unsupported("{{ '91908988878685848382'|int }}", "beyond 64 bits");
  unsupported("{{ (-9223372036854775807 - 1)|abs }}", "beyond 64 bits");
  unsupported("{{ xs|map(attribute='0.99999999999999999999')|list }}", "beyond 64 bits");
  unsupported("{{ xs.99999999999999999999 }}", "beyond 64 bits");
  // The largest values that fit still convert.
  CHECK(render_template("{{ 9.2e18|int }} {{ -9.2e18|int }} {{ '9223372036854775807'|int }} {{ -9223372036854775807|abs }}",
                        ordered_json::object()) ==
        "9200000000000000000 -9200000000000000000 9223372036854775807 9223372036854775807");
}

TEST_CASE("Template errors carry line and column", "[chat]") {
  SECTION("syntax error") {
    try {
      JinjaTemplate t("line1\n  {{ 1 + }}", "t.jinja");
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::kFormat);
      CHECK(contains(e.what(), "t.jinja, line 2, column 10"));  // at the `}}` where an operand was due
    }
  }
  SECTION("unknown filter is named") {
    try {
      JinjaTemplate t("{{ x|frobnicate }}");
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::kFormat);
      CHECK(contains(e.what(), "line 1, column 6"));
      CHECK(contains(e.what(), "No filter named 'frobnicate'"));
    }
  }
  SECTION("Jinja filter circuitscope does not implement") {
    try {
      JinjaTemplate t("{{ x|groupby('a') }}");
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::kUnsupported);
      CHECK(contains(e.what(), "groupby"));
    }
  }
  SECTION("unsupported tag") {
    try {
      JinjaTemplate t("{% include 'x.jinja' %}");
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::kUnsupported);
      CHECK(contains(e.what(), "include"));
    }
  }
  SECTION("raise_exception propagates verbatim with its location") {
    JinjaTemplate t("{% for m in messages %}\n{% if m.role == 'tool' %}\n  {{ raise_exception('No tools, please.') }}\n"
                    "{% endif %}\n{% endfor %}");
    try {
      t.render({{"messages", ordered_json::parse(R"([{"role":"user"},{"role":"tool"}])")}});
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::kInput);
      CHECK(contains(e.what(), "No tools, please."));
      CHECK(contains(e.what(), "line 3, column 6"));
    }
  }
  SECTION("runtime type error points at the operator") {
    try {
      render_template("{{ 'a' + 1 }}", ordered_json::object());
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::kInput);
      CHECK(contains(e.what(), "line 1, column 8"));
      CHECK(contains(e.what(), "can only concatenate str (not \"int\") to str"));
    }
  }
  SECTION("attribute of undefined is an error, as in Jinja") {
    try {
      render_template("ok\n{{ missing.attr }}", ordered_json::object());
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(e.code() == ErrorCode::kInput);
      CHECK(contains(e.what(), "'missing' is undefined"));
      CHECK(contains(e.what(), "line 2, column"));
    }
  }
  SECTION("context must be an object") {
    CHECK_THROWS_AS(render_template("x", ordered_json::array()), Error);
  }
}

// ---- tokenizer_config.json ----------------------------------------------------------------------

TEST_CASE("load_tokenizer_config reads Qwen3's config", "[chat]") {
  auto c = circuitscope::load_tokenizer_config(kChatDir + "/qwen3");
  CHECK_FALSE(c.bos_token.has_value());  // null in the file
  CHECK_FALSE(c.unk_token.has_value());
  REQUIRE(c.eos_token.has_value());
  CHECK(*c.eos_token == "<|im_end|>");
  REQUIRE(c.pad_token.has_value());
  CHECK(*c.pad_token == "<|endoftext|>");
  REQUIRE(c.add_bos_token.has_value());
  CHECK(*c.add_bos_token == false);
  CHECK_FALSE(c.add_eos_token.has_value());
  CHECK(c.additional_special_tokens.size() == 13);
  CHECK(c.additional_special_tokens.front() == "<|im_start|>");
  CHECK(c.named_chat_templates.empty());
  REQUIRE(c.chat_template.has_value());
  CHECK(contains(*c.chat_template, "ns.multi_step_tool"));
}

TEST_CASE("load_tokenizer_config: AddedToken objects - the list form and chat_template.jinja", "[chat]") {
  TempModelDir d(R"({
    "bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": false, "normalized": false, "rstrip": false, "single_word": false},
    "eos_token": "</s>", "unk_token": null, "add_bos_token": true, "add_eos_token": false,
    "chat_template": [{"name": "tool_use", "template": "TOOLS"}, {"name": "default", "template": "{{ bos_token }}{{ messages[0].content }}{{ eos_token }}"}]
  })",
                 "list");
  auto c = circuitscope::load_tokenizer_config(d.path.string());
  REQUIRE(c.bos_token.has_value());
  CHECK(*c.bos_token == "<s>");
  CHECK(*c.eos_token == "</s>");
  CHECK_FALSE(c.unk_token.has_value());
  CHECK(*c.add_bos_token == true);
  CHECK(*c.add_eos_token == false);
  CHECK(c.named_chat_templates.size() == 2);
  REQUIRE(c.chat_template.has_value());
  CHECK(circuitscope::apply_chat_template(c, {{"user", std::string("hi"), false, std::nullopt}}, true, std::nullopt) ==
        "<s>hi</s>");
  // chat_template.jinja beside the config replaces the config's template, as in transformers.
  std::ofstream(d.path / "chat_template.jinja") << "J:{{ messages|length }}\n";
  auto c2 = circuitscope::load_tokenizer_config(d.path.string());
  CHECK(circuitscope::apply_chat_template(c2, {{"user", std::string("hi"), false, std::nullopt}}, false, std::nullopt) == "J:1");
  // An override template wins over both.
  std::string over = "O{{ add_generation_prompt }}";
  CHECK(circuitscope::apply_chat_template(c2, {}, true, std::nullopt, &over) == "OTrue");
}

TEST_CASE("load_tokenizer_config errors name the file and key", "[chat]") {
  auto expect_error = [](const std::string& text, ErrorCode code, const std::string& key) {
    TempModelDir d(text, "err");
    try {
      circuitscope::load_tokenizer_config(d.path.string());
      FAIL("no error for " << text);
    } catch (const Error& e) {
      CHECK(e.code() == code);
      CHECK(contains(e.what(), "tokenizer_config.json"));
      CHECK(contains(e.what(), key));
    }
  };
  expect_error(R"({"bos_token": 5})", ErrorCode::kFormat, "'bos_token'");
  expect_error(R"({"eos_token": {"__type": "AddedToken"}})", ErrorCode::kFormat, "'eos_token'");
  expect_error(R"({"add_bos_token": "yes"})", ErrorCode::kFormat, "'add_bos_token'");
  expect_error(R"({"chat_template": 7})", ErrorCode::kFormat, "'chat_template'");
  expect_error(R"({"chat_template": [{"name": "default"}]})", ErrorCode::kFormat, "chat_template[0]");
  expect_error(R"({"bos_token": )", ErrorCode::kFormat, "invalid JSON");
  CHECK_THROWS_AS(circuitscope::load_tokenizer_config(kChatDir + "/does-not-exist"), Error);
  TempModelDir none(R"({"eos_token": "</s>"})", "none");
  auto c = circuitscope::load_tokenizer_config(none.path.string());
  CHECK_FALSE(c.chat_template.has_value());
  try {
    circuitscope::apply_chat_template(c, {}, true, std::nullopt);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kConfig);
  }
}

TEST_CASE("chat_template_context passes what transformers passes", "[chat]") {
  circuitscope::TokenizerConfig c;
  c.eos_token = "</s>";
  ordered_json ctx = circuitscope::chat_template_context(c, ordered_json::array(), true, std::nullopt);
  CHECK(ctx["tools"].is_null());
  CHECK(ctx["documents"].is_null());
  CHECK_FALSE(ctx.contains("bos_token"));  // unset tokens are left out, hence undefined
  CHECK_FALSE(ctx.contains("enable_thinking"));
  CHECK(ctx["eos_token"] == "</s>");
  ordered_json ctx2 = circuitscope::chat_template_context(c, ordered_json::array(), false, false);
  CHECK(ctx2["enable_thinking"] == false);
  // ChatMessage: absent content is undefined, content_is_none passes None.
  ordered_json m = circuitscope::chat_messages_to_json(
      {{"assistant", std::nullopt, false, std::nullopt}, {"assistant", std::nullopt, true, std::string("r")}});
  CHECK_FALSE(m[0].contains("content"));
  CHECK(m[1]["content"].is_null());
  CHECK(m[1]["reasoning_content"] == "r");
}

// ---- the CLI ---------------------------------------------------------------------------------------

TEST_CASE("chat-format prints the rendered prompt", "[chat]") {
  auto rows = read_jsonl_ordered(kChatDir + "/qwen3/chat_template_reference.jsonl");
  const std::string dir = shell_quote(kChatDir + "/qwen3");
  int status = -1;
  // Row 6: system + user, add_generation_prompt, enable_thinking absent.
  REQUIRE(rows[6]["messages"].size() == 2);
  REQUIRE_FALSE(rows[6].contains("enable_thinking"));
  std::string out = run_chat_format(dir + " --system " + shell_quote(rows[6]["messages"][0]["content"]) + " --user " +
                                shell_quote(rows[6]["messages"][1]["content"]),
                            &status);
  CHECK(status == 0);
  CHECK(out == rows[6]["text"].get<std::string>());
  // Row 8: the same with enable_thinking=false.
  REQUIRE(rows[8]["enable_thinking"] == false);
  out = run_chat_format(dir + " --system " + shell_quote(rows[8]["messages"][0]["content"]) + " --user " +
                    shell_quote(rows[8]["messages"][1]["content"]) + " --think off",
                &status);
  CHECK(status == 0);
  CHECK(out == rows[8]["text"].get<std::string>());
  // Row 21: user + assistant, no generation prompt.
  REQUIRE(rows[21]["add_generation_prompt"] == false);
  REQUIRE_FALSE(rows[21].contains("enable_thinking"));
  out = run_chat_format(dir + " --user " + shell_quote(rows[21]["messages"][0]["content"]) + " --assistant " +
                    shell_quote(rows[21]["messages"][1]["content"]) + " --no-generation-prompt",
                &status);
  CHECK(status == 0);
  CHECK(out == rows[21]["text"].get<std::string>());
  // --template replaces the model's template.
  fs::path tpl = fs::temp_directory_path() / ("cs_chat_tpl_" + std::to_string(::getpid()) + ".jinja");
  std::ofstream(tpl) << "[{{ messages[0].content }}|{{ eos_token }}]";
  out = run_chat_format(dir + " --user hi --template " + shell_quote(tpl.string()), &status);
  fs::remove(tpl);
  CHECK(status == 0);
  CHECK(out == "[hi|<|im_end|>]");
  // Usage errors exit with kUsage.
  run_chat_format(dir, &status);
  CHECK(status == static_cast<int>(ErrorCode::kUsage));
}

TEST_CASE("chat-format --input-jsonl renders every line", "[chat]") {
  auto rows = read_jsonl_ordered(kChatDir + "/qwen3/chat_template_reference.jsonl");
  fs::path in = fs::temp_directory_path() / ("cs_chat_batch_" + std::to_string(::getpid()) + ".jsonl");
  {
    std::ofstream f(in);
    for (const auto& r : rows) {
      ordered_json line = {{"messages", r["messages"]}, {"add_generation_prompt", r["add_generation_prompt"]}};
      if (r.contains("enable_thinking")) line["enable_thinking"] = r["enable_thinking"];
      f << line.dump() << "\n";
    }
  }
  int status = -1;
  std::string out = run_chat_format(shell_quote(kChatDir + "/qwen3") + " --input-jsonl " + shell_quote(in.string()), &status);
  fs::remove(in);
  CHECK(status == 0);
  std::istringstream lines(out);
  std::string line;
  size_t i = 0;
  while (std::getline(lines, line)) {
    REQUIRE(i < rows.size());
    CHECK(ordered_json::parse(line)["text"] == rows[i]["text"]);
    ++i;
  }
  CHECK(i == rows.size());
}
