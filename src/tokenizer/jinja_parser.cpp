// Lexer and parser of the Jinja engine. They follow Jinja2 3.1's lexer.py / parser.py closely
// (same whitespace rules with trim_blocks and lstrip_blocks on, same precedence), because chat
// templates are whitespace-sensitive and are written against that implementation.
#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "circuitscope/error.hpp"
#include "tokenizer/jinja_ast.hpp"

namespace circuitscope::jinja {
namespace {

enum class Tok { kData, kVarBegin, kVarEnd, kBlockBegin, kBlockEnd, kName, kString, kInt, kFloat, kOp, kEof };

struct Token {
  Tok type;
  std::string value;  // data text, name, decoded string literal, number text, operator
  Loc loc;
};

std::string describe(const Token& t) {
  switch (t.type) {
    case Tok::kData: return "template data";
    case Tok::kVarBegin: return "begin of print statement";
    case Tok::kVarEnd: return "end of print statement";
    case Tok::kBlockBegin: return "begin of statement block";
    case Tok::kBlockEnd: return "end of statement block";
    case Tok::kEof: return "end of template";
    case Tok::kString: return "string";
    default: return t.value;
  }
}

// Maps byte offsets of the (newline-normalised) source to 1-based line and column; columns count
// code points.
class LineMap {
 public:
  explicit LineMap(const std::string& s) : s_(s) {
    starts_.push_back(0);
    for (size_t i = 0; i < s.size(); ++i)
      if (s[i] == '\n') starts_.push_back(i + 1);
  }
  Loc at(size_t off) const {
    auto it = std::upper_bound(starts_.begin(), starts_.end(), off);
    size_t line = static_cast<size_t>(it - starts_.begin());
    size_t start = starts_[line - 1];
    int col = 1;
    // The lexer asks in increasing order: continue from the last answer on the same line, so that
    // a template of one long line costs linear time, not quadratic.
    if (line == cache_line_ && off >= cache_off_) {
      start = cache_off_;
      col = cache_col_;
    }
    for (size_t i = start; i < off && i < s_.size(); ++i) col += (static_cast<unsigned char>(s_[i]) & 0xC0) != 0x80;
    cache_line_ = line;
    cache_off_ = off;
    cache_col_ = col;
    return Loc{static_cast<int>(line), col};
  }

 private:
  mutable size_t cache_line_ = 0, cache_off_ = 0;
  mutable int cache_col_ = 1;
  const std::string& s_;
  std::vector<size_t> starts_;
};

[[noreturn]] void syntax_error(const std::string& name, const Loc& loc, const std::string& msg) {
  throw Error(ErrorCode::kFormat, name + ", line " + std::to_string(loc.line) + ", column " + std::to_string(loc.col) +
                                      ": TemplateSyntaxError: " + msg);
}
[[noreturn]] void unsupported_error(const std::string& name, const Loc& loc, const std::string& msg) {
  throw Error(ErrorCode::kUnsupported, name + ", line " + std::to_string(loc.line) + ", column " +
                                           std::to_string(loc.col) + ": " + msg);
}

// Whitespace as Python's `\s` / str.isspace() sees it, at byte offset i; returns its byte length or 0.
size_t py_space_len(const std::string& s, size_t i) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return is_py_space(c) ? 1 : 0;
  std::u32string u = utf8_decode(s.substr(i, std::min<size_t>(4, s.size() - i)));
  if (u.empty() || !is_py_space(u[0])) return 0;
  std::string enc;
  utf8_append(enc, u[0]);
  return enc.size();
}

std::string py_rstrip(const std::string& s) { return py_strip(s, Value::none(), false, true); }

bool all_py_space(const std::string& s, size_t from) {
  if (from >= s.size()) return false;
  for (size_t i = from; i < s.size();) {
    size_t n = py_space_len(s, i);
    if (!n) return false;
    i += n;
  }
  return true;
}

size_t skip_py_space(const std::string& s, size_t i) {
  while (i < s.size()) {
    size_t n = py_space_len(s, i);
    if (!n) break;
    i += n;
  }
  return i;
}

bool is_name_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || static_cast<unsigned char>(c) >= 0x80; }
bool is_name_char(char c) { return is_name_start(c) || std::isdigit(static_cast<unsigned char>(c)); }

// Python's unicode-escape decoding of a string literal's body (what Jinja2 applies).
std::string decode_string_literal(const std::string& body) {
  std::string out;
  for (size_t i = 0; i < body.size(); ++i) {
    char c = body[i];
    if (c != '\\' || i + 1 >= body.size()) {
      out += c;
      continue;
    }
    char e = body[++i];
    auto hex = [&](size_t n) -> long {
      if (i + n >= body.size()) return -1;
      std::string h = body.substr(i + 1, n);
      if (h.size() != n || !std::all_of(h.begin(), h.end(), [](char x) { return std::isxdigit(static_cast<unsigned char>(x)); }))
        return -1;
      i += n;
      return std::strtol(h.c_str(), nullptr, 16);
    };
    switch (e) {
      case '\n': break;  // line continuation
      case '\\': out += '\\'; break;
      case '\'': out += '\''; break;
      case '"': out += '"'; break;
      case 'a': out += '\a'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'v': out += '\v'; break;
      case 'x':
      case 'u':
      case 'U': {
        long cp = hex(e == 'x' ? 2 : e == 'u' ? 4 : 8);
        if (cp < 0) throw ValueError{ValueError::Kind::kValue, std::string("truncated \\") + e + " escape in string literal"};
        // A surrogate pair written as two \u escapes: combine it.
        if (cp >= 0xD800 && cp <= 0xDBFF && i + 6 < body.size() && body.compare(i + 1, 2, "\\u") == 0) {
          std::string h = body.substr(i + 3, 4);
          long lo = std::strtol(h.c_str(), nullptr, 16);
          if (h.size() == 4 && lo >= 0xDC00 && lo <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            i += 6;
          }
        }
        utf8_append(out, static_cast<char32_t>(cp));
        break;
      }
      default:
        if (e >= '0' && e <= '7') {
          int v = e - '0', n = 1;
          while (n < 3 && i + 1 < body.size() && body[i + 1] >= '0' && body[i + 1] <= '7') {
            v = v * 8 + (body[++i] - '0');
            ++n;
          }
          utf8_append(out, static_cast<char32_t>(v));
        } else {  // unknown escapes stay as written
          out += '\\';
          out += e;
        }
    }
  }
  return out;
}

class Lexer {
 public:
  Lexer(const std::string& src, const std::string& name) : src_(src), name_(name), lines_(src) {}

  std::vector<Token> run() {
    const size_t n = src_.size();
    size_t pos = 0;
    bool line_starting = true;
    while (pos < n) {
      size_t i = pos;
      while (true) {
        i = src_.find('{', i);
        if (i == std::string::npos || i + 1 >= n) {
          i = std::string::npos;
          break;
        }
        char k = src_[i + 1];
        if (k == '{' || k == '%' || k == '#') break;
        ++i;
      }
      if (i == std::string::npos) {
        emit(Tok::kData, src_.substr(pos), pos);
        break;
      }
      std::string text = src_.substr(pos, i - pos);
      const char kind = src_[i + 1];
      size_t after = i + 2;
      char sign = after < n && (src_[after] == '-' || src_[after] == '+') ? src_[after] : 0;
      size_t raw_end = kind == '%' ? match_raw_begin(i) : 0;
      if (raw_end) sign = src_[i + 2] == '-' || src_[i + 2] == '+' ? src_[i + 2] : 0;
      text = lstrip(text, sign, kind == '{', line_starting);
      if (!text.empty()) emit(Tok::kData, text, pos);
      line_starting = false;
      if (raw_end) {
        pos = raw_end;
        line_starting = src_[pos - 1] == '\n';
        pos = lex_raw_body(pos, line_starting, i);
        line_starting = src_[pos - 1] == '\n';
        continue;
      }
      pos = after + (sign ? 1 : 0);
      if (kind == '#') {
        size_t q = src_.find("#}", pos);
        if (q == std::string::npos) syntax_error(name_, lines_.at(i), "Missing end of comment tag");
        char end_sign = (q >= pos + 1 && (src_[q - 1] == '-' || src_[q - 1] == '+')) ? src_[q - 1] : 0;
        pos = q + 2;
        pos = end_suffix(pos, end_sign, true);
        line_starting = src_[pos - 1] == '\n';
        continue;
      }
      pos = lex_tag(kind, i, pos);
      line_starting = src_[pos - 1] == '\n';
    }
    tokens_.push_back(Token{Tok::kEof, "", lines_.at(n)});
    return std::move(tokens_);
  }

 private:
  void emit(Tok t, std::string v, size_t off) { tokens_.push_back(Token{t, std::move(v), lines_.at(off)}); }

  // OptionalLStrip: the whitespace before a tag that `-` or lstrip_blocks removes.
  std::string lstrip(const std::string& text, char sign, bool is_variable, bool line_starting) const {
    if (sign == '-') return py_rstrip(text);
    if (sign == '+' || is_variable) return text;
    size_t nl = text.rfind('\n');
    size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
    if ((l_pos > 0 || line_starting) && all_py_space(text, l_pos)) return text.substr(0, l_pos);
    return text;
  }

  // After a block/comment end: `-` eats following whitespace, `+` nothing, otherwise trim_blocks
  // removes one newline.
  size_t end_suffix(size_t pos, char sign, bool trim) const {
    if (sign == '-') return skip_py_space(src_, pos);
    if (sign == '+' || !trim) return pos;
    if (pos < src_.size() && src_[pos] == '\n') return pos + 1;
    return pos;
  }

  // `{%(-|+|)\s*raw\s*(-%}\s*|%})` at i; returns the end offset or 0.
  size_t match_raw_begin(size_t i) const {
    size_t p = i + 2;
    if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) ++p;
    p = skip_py_space(src_, p);
    if (src_.compare(p, 3, "raw") != 0) return 0;
    p += 3;
    size_t q = skip_py_space(src_, p);
    if (src_.compare(q, 3, "-%}") == 0) return skip_py_space(src_, q + 3);
    if (src_.compare(q, 2, "%}") == 0) return q + 2;
    return 0;  // e.g. `{% rawfoo %}`
  }

  size_t lex_raw_body(size_t pos, bool line_starting, size_t begin) {
    size_t search = pos;
    while (true) {
      size_t s = src_.find("{%", search);
      if (s == std::string::npos) syntax_error(name_, lines_.at(begin), "Missing end of raw directive");
      size_t p = s + 2;
      char sign = 0;
      if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) sign = src_[p++];
      p = skip_py_space(src_, p);
      if (src_.compare(p, 6, "endraw") == 0) {
        p = skip_py_space(src_, p + 6);
        char end_sign = 0;
        if (src_.compare(p, 3, "+%}") == 0 || src_.compare(p, 3, "-%}") == 0) {
          end_sign = src_[p];
          p += 3;
        } else if (src_.compare(p, 2, "%}") == 0) {
          p += 2;
        } else {
          search = s + 2;
          continue;
        }
        std::string text = lstrip(src_.substr(pos, s - pos), sign, false, line_starting);
        if (!text.empty()) emit(Tok::kData, text, pos);
        return end_suffix(p, end_sign, true);
      }
      search = s + 2;
    }
  }

  size_t lex_tag(char kind, size_t begin, size_t pos) {
    const size_t n = src_.size();
    emit(kind == '%' ? Tok::kBlockBegin : Tok::kVarBegin, "", begin);
    std::vector<char> balance;
    while (true) {
      if (pos >= n)
        syntax_error(name_, lines_.at(begin),
                     std::string("unexpected end of template inside ") + (kind == '%' ? "a '{%' tag" : "a '{{' tag"));
      if (balance.empty()) {
        if (kind == '%') {
          if (src_.compare(pos, 3, "+%}") == 0 || src_.compare(pos, 3, "-%}") == 0) {
            emit(Tok::kBlockEnd, "", pos);
            return end_suffix(pos + 3, src_[pos], true);
          }
          if (src_.compare(pos, 2, "%}") == 0) {
            emit(Tok::kBlockEnd, "", pos);
            return end_suffix(pos + 2, 0, true);
          }
        } else {
          if (src_.compare(pos, 3, "-}}") == 0) {
            emit(Tok::kVarEnd, "", pos);
            return skip_py_space(src_, pos + 3);
          }
          if (src_.compare(pos, 2, "}}") == 0) {
            emit(Tok::kVarEnd, "", pos);
            return pos + 2;
          }
        }
      }
      if (size_t sp = py_space_len(src_, pos)) {
        pos += sp;
        continue;
      }
      char c = src_[pos];
      if (std::isdigit(static_cast<unsigned char>(c))) {
        pos = lex_number(pos);
        continue;
      }
      if (is_name_start(c)) {
        size_t e = pos;
        while (e < n && is_name_char(src_[e])) ++e;
        emit(Tok::kName, src_.substr(pos, e - pos), pos);
        pos = e;
        continue;
      }
      if (c == '\'' || c == '"') {
        size_t e = pos + 1;
        while (e < n && src_[e] != c) e += src_[e] == '\\' ? 2 : 1;
        if (e >= n) syntax_error(name_, lines_.at(pos), "unexpected char '" + std::string(1, c) + "' (unterminated string)");
        try {
          emit(Tok::kString, decode_string_literal(src_.substr(pos + 1, e - pos - 1)), pos);
        } catch (const ValueError& err) {
          syntax_error(name_, lines_.at(pos), err.message);
        }
        pos = e + 1;
        continue;
      }
      static const char* const kOps2[] = {"//", "**", "==", "!=", ">=", "<="};
      std::string op;
      for (const char* o : kOps2)
        if (src_.compare(pos, 2, o) == 0) op = o;
      if (op.empty() && std::strchr("+-/*%~[](){}=.:|,;<>", c)) op = std::string(1, c);
      if (op.empty()) syntax_error(name_, lines_.at(pos), "unexpected char '" + std::string(1, c) + "'");
      if (op == "(" || op == "[" || op == "{") {
        balance.push_back(op == "(" ? ')' : op == "[" ? ']' : '}');
      } else if (op == ")" || op == "]" || op == "}") {
        if (balance.empty()) syntax_error(name_, lines_.at(pos), "unexpected '" + op + "'");
        if (balance.back() != op[0])
          syntax_error(name_, lines_.at(pos), "unexpected '" + op + "', expected '" + std::string(1, balance.back()) + "'");
        balance.pop_back();
      }
      emit(Tok::kOp, op, pos);
      pos += op.size();
    }
  }

  size_t lex_number(size_t pos) {
    const size_t n = src_.size();
    auto digits = [&](size_t p, auto pred) {
      size_t e = p;
      while (e < n && (pred(src_[e]) || (src_[e] == '_' && e + 1 < n && pred(src_[e + 1]) && e > p))) ++e;
      return e;
    };
    auto dec = [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; };
    if (src_[pos] == '0' && pos + 1 < n && std::strchr("xXoObB", src_[pos + 1])) {
      char k = static_cast<char>(std::tolower(static_cast<unsigned char>(src_[pos + 1])));
      int base = k == 'x' ? 16 : k == 'o' ? 8 : 2;
      size_t e = pos + 2;
      while (e < n && (std::isxdigit(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) ++e;
      std::string d;
      for (size_t i = pos + 2; i < e; ++i)
        if (src_[i] != '_') d += src_[i];
      emit(Tok::kInt, std::to_string(std::strtoll(d.c_str(), nullptr, base)), pos);
      return e;
    }
    size_t e = digits(pos, dec);
    bool is_float = false;
    // Jinja's float rule does not apply right after a '.', so `foo.0.1` is two subscripts.
    bool after_dot = pos > 0 && src_[pos - 1] == '.';
    if (!after_dot) {
      size_t f = e;
      if (f + 1 < n && src_[f] == '.' && dec(src_[f + 1])) {
        f = digits(f + 1, dec);
        is_float = true;
      }
      if (f < n && (src_[f] == 'e' || src_[f] == 'E')) {
        size_t g = f + 1;
        if (g < n && (src_[g] == '+' || src_[g] == '-')) ++g;
        if (g < n && dec(src_[g])) {
          f = digits(g, dec);
          is_float = true;
        }
      }
      if (is_float) e = f;
    }
    std::string text;
    for (size_t i = pos; i < e; ++i)
      if (src_[i] != '_') text += src_[i];
    emit(is_float ? Tok::kFloat : Tok::kInt, text, pos);
    return e;
  }

  const std::string& src_;
  const std::string& name_;
  LineMap lines_;
  std::vector<Token> tokens_;
};

// ---- parser ---------------------------------------------------------------------------------------

class Parser {
 public:
  Parser(std::vector<Token> tokens, const std::string& name) : toks_(std::move(tokens)), name_(name) {}

  Body parse_template() {
    Body body = subparse({});
    if (cur().type != Tok::kEof) fail(cur(), "unexpected " + describe(cur()));
    return body;
  }

 private:
  // Block-nesting context for messages ("Jinja was looking for ...").
  struct Pending {
    std::string tag;
    std::vector<std::string> ends;
  };

  const Token& cur() const { return toks_[pos_]; }
  const Token& look(size_t k = 1) const { return toks_[std::min(pos_ + k, toks_.size() - 1)]; }
  const Token& next() {
    const Token& t = toks_[pos_];
    if (pos_ + 1 < toks_.size()) ++pos_;
    return t;
  }
  // An integer token's value (a literal or a `.0` subscript); Python's ints have no bound, ours 64 bits.
  Value int_token(const Token& t) const {
    errno = 0;
    const long long v = std::strtoll(t.value.c_str(), nullptr, 10);
    if (errno == ERANGE) unsupported_error(name_, t.loc, "integer " + t.value + " is beyond 64 bits");
    return Value(static_cast<int64_t>(v));
  }
  bool is_op(const char* op) const { return cur().type == Tok::kOp && cur().value == op; }
  bool is_name(const char* n) const { return cur().type == Tok::kName && cur().value == n; }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(const char* n) {
    if (!is_name(n)) return false;
    next();
    return true;
  }
  [[noreturn]] void fail(const Token& t, const std::string& msg) const { syntax_error(name_, t.loc, msg); }
  const Token& expect_op(const char* op) {
    if (!is_op(op)) fail(cur(), std::string("expected token '") + op + "', got '" + describe(cur()) + "'");
    return next();
  }
  const Token& expect_name() {
    if (cur().type != Tok::kName) fail(cur(), "expected token 'name', got '" + describe(cur()) + "'");
    return next();
  }
  const Token& expect(Tok t, const char* what) {
    if (cur().type != t) fail(cur(), std::string("expected token '") + what + "', got '" + describe(cur()) + "'");
    return next();
  }
  void expect_block_end() {
    skip_op(":");
    expect(Tok::kBlockEnd, "end of statement block");
  }

  std::string looking_for() const {
    if (pending_.empty()) return "";
    const Pending& p = pending_.back();
    std::string s = " Jinja was looking for the following tags: ";
    for (size_t i = 0; i < p.ends.size(); ++i) s += (i ? " or '" : "'") + p.ends[i] + "'";
    return s + ". The innermost block that needs to be closed is '" + p.tag + "'.";
  }

  // Parses until a `{% name %}` with name in `ends` (left unconsumed: current token is that name).
  Body subparse(const std::vector<std::string>& ends) {
    Body body;
    while (true) {
      const Token& t = cur();
      if (t.type == Tok::kEof) {
        if (!ends.empty()) fail(t, "Unexpected end of template." + looking_for());
        return body;
      }
      if (t.type == Tok::kData) {
        auto s = std::make_unique<OutputStmt>();
        s->loc = t.loc;
        s->text = t.value;
        body.push_back(std::move(s));
        next();
      } else if (t.type == Tok::kVarBegin) {
        next();
        expr_nodes_ = 0;
        auto s = std::make_unique<EmitStmt>();
        s->loc = cur().loc;
        s->expr = parse_tuple(false, true, {}, false);
        expect(Tok::kVarEnd, "end of print statement");
        body.push_back(std::move(s));
      } else if (t.type == Tok::kBlockBegin) {
        next();
        if (cur().type == Tok::kName && std::find(ends.begin(), ends.end(), cur().value) != ends.end()) return body;
        expr_nodes_ = 0;
        body.push_back(parse_statement());
      } else {
        fail(t, "unexpected " + describe(t));
      }
    }
  }

  // After the tag head: `%}`, then a body up to one of `ends`; leaves the end name current.
  Body parse_statements(const std::string& tag, std::vector<std::string> ends, bool drop_needle) {
    expect_block_end();
    Nested nested(*this);
    pending_.push_back({tag, ends});
    Body body = subparse(ends);
    pending_.pop_back();
    if (drop_needle) {
      next();  // the end tag's name
    }
    return body;
  }

  StmtPtr parse_statement() {
    const Token& t = cur();
    if (t.type != Tok::kName) fail(t, "tag name expected");
    const std::string& n = t.value;
    if (n == "for") return parse_for();
    if (n == "if") return parse_if();
    if (n == "set") return parse_set();
    if (n == "macro") return parse_macro();
    if (n == "filter") return parse_filter_block();
    if (n == "with") return parse_with();
    if (n == "print") {
      Loc loc = next().loc;
      auto s = std::make_unique<EmitStmt>();
      s->loc = loc;
      s->expr = parse_tuple(false, true, {}, false);
      expect(Tok::kBlockEnd, "end of statement block");
      return s;
    }
    if (n == "break" || n == "continue") {
      Loc loc = next().loc;
      if (loop_depth_ == 0) syntax_error(name_, loc, "'" + n + "' outside of a loop");
      auto s = std::make_unique<LoopControlStmt>();
      s->loc = loc;
      s->flow = n == "break" ? Flow::kBreak : Flow::kContinue;
      expect(Tok::kBlockEnd, "end of statement block");
      return s;
    }
    if (n == "generation") {
      Loc loc = next().loc;
      auto s = std::make_unique<ScopeStmt>();
      s->loc = loc;
      s->body = parse_statements("generation", {"endgeneration"}, true);
      expect(Tok::kBlockEnd, "end of statement block");
      return s;
    }
    if (n == "call" || n == "block" || n == "extends" || n == "include" || n == "import" || n == "from" ||
        n == "autoescape")
      unsupported_error(name_, t.loc, "the '" + n + "' tag is not supported by circuitscope's Jinja engine");
    fail(t, "Encountered unknown tag '" + n + "'." + looking_for());
  }

  StmtPtr parse_for() {
    Loc loc = next().loc;
    auto s = std::make_unique<ForStmt>();
    s->loc = loc;
    s->target = parse_assign_target(true, false, {"in"});
    if (!skip_name("in")) fail(cur(), "expected token 'in', got '" + describe(cur()) + "'");
    s->iter = parse_tuple(false, false, {"recursive"}, false);
    bool saved_soft = soft_;
    soft_ = false;
    if (skip_name("if")) s->filter = parse_expression(true);
    if (is_name("recursive")) unsupported_error(name_, cur().loc, "recursive for loops are not supported");
    ++loop_depth_;
    s->body = parse_statements("for", {"endfor", "else"}, false);
    --loop_depth_;
    if (next().value == "else") s->otherwise = parse_statements("for", {"endfor"}, true);
    soft_ = saved_soft;
    expect(Tok::kBlockEnd, "end of statement block");
    return s;
  }

  StmtPtr parse_if() {
    Loc loc = next().loc;
    auto s = std::make_unique<IfStmt>();
    s->loc = loc;
    bool saved_soft = soft_;
    soft_ = true;
    while (true) {
      ExprPtr cond = parse_tuple(false, false, {}, false);
      Body body = parse_statements("if", {"elif", "else", "endif"}, false);
      s->branches.emplace_back(std::move(cond), std::move(body));
      std::string which = next().value;
      if (which == "elif") continue;
      if (which == "else") s->otherwise = parse_statements("if", {"endif"}, true);
      break;
    }
    soft_ = saved_soft;
    expect(Tok::kBlockEnd, "end of statement block");
    return s;
  }

  StmtPtr parse_set() {
    Loc loc = next().loc;
    Target target = parse_assign_target(true, true, {});
    if (skip_op("=")) {
      auto s = std::make_unique<AssignStmt>();
      s->loc = loc;
      s->target = std::move(target);
      s->value = parse_tuple(false, true, {}, false);
      expect(Tok::kBlockEnd, "end of statement block");
      return s;
    }
    auto s = std::make_unique<AssignBlockStmt>();
    s->loc = loc;
    s->target = std::move(target);
    bool saved_soft = soft_;
    soft_ = false;
    while (is_op("|")) s->filters.push_back(parse_one_filter(nullptr));
    s->body = parse_statements("set", {"endset"}, true);
    soft_ = saved_soft;
    expect(Tok::kBlockEnd, "end of statement block");
    return s;
  }

  StmtPtr parse_macro() {
    Loc loc = next().loc;
    auto s = std::make_unique<MacroStmt>();
    s->loc = loc;
    s->name = expect_name().value;
    expect_op("(");
    while (!is_op(")")) {
      if (!s->params.empty()) expect_op(",");
      if (is_op(")")) break;
      s->params.push_back(expect_name().value);
      if (skip_op("=")) {
        s->defaults.push_back(parse_expression(true));
      } else if (!s->defaults.empty()) {
        fail(cur(), "non-default argument follows default argument");
      }
    }
    expect_op(")");
    bool saved_soft = soft_;
    soft_ = false;
    int saved_loops = loop_depth_;
    loop_depth_ = 0;
    s->body = parse_statements("macro", {"endmacro"}, true);
    loop_depth_ = saved_loops;
    soft_ = saved_soft;
    expect(Tok::kBlockEnd, "end of statement block");
    return s;
  }

  StmtPtr parse_filter_block() {
    Loc loc = next().loc;
    auto s = std::make_unique<FilterBlockStmt>();
    s->loc = loc;
    bool saved_soft = soft_;
    soft_ = false;
    s->filters.push_back(parse_one_filter(nullptr, true));
    while (is_op("|")) s->filters.push_back(parse_one_filter(nullptr));
    s->body = parse_statements("filter", {"endfilter"}, true);
    soft_ = saved_soft;
    expect(Tok::kBlockEnd, "end of statement block");
    return s;
  }

  StmtPtr parse_with() {
    Loc loc = next().loc;
    auto s = std::make_unique<WithStmt>();
    s->loc = loc;
    while (cur().type != Tok::kBlockEnd) {
      if (!s->assignments.empty()) expect_op(",");
      Target t = parse_assign_target(false, false, {});
      expect_op("=");
      s->assignments.emplace_back(std::move(t), parse_expression(true));
    }
    bool saved_soft = soft_;
    soft_ = false;
    s->body = parse_statements("with", {"endwith"}, true);
    soft_ = saved_soft;
    expect(Tok::kBlockEnd, "end of statement block");
    return s;
  }

  Target parse_assign_target(bool with_tuple, bool with_namespace, const std::vector<std::string>& extra_end) {
    Target t;
    t.loc = cur().loc;
    if (with_namespace && cur().type == Tok::kName && look().type == Tok::kOp && look().value == ".") {
      t.kind = Target::Kind::kNamespaceAttr;
      t.names.push_back(next().value);
      next();  // '.'
      t.attr = expect_name().value;
      return t;
    }
    bool parens = false;
    if (with_tuple && is_op("(")) {
      next();
      parens = true;
    }
    while (true) {
      if (cur().type != Tok::kName) fail(cur(), "can't assign to " + describe(cur()));
      const std::string& n = cur().value;
      if (n == "true" || n == "false" || n == "none" || n == "True" || n == "False" || n == "None")
        fail(cur(), "can't assign to constant '" + n + "'");
      t.names.push_back(next().value);
      if (!with_tuple || !is_op(",")) break;
      next();
      if (is_op(")") || cur().type == Tok::kBlockEnd ||
          (cur().type == Tok::kName && std::find(extra_end.begin(), extra_end.end(), cur().value) != extra_end.end()))
        break;
    }
    if (parens) expect_op(")");
    if (t.names.size() > 1 || parens) t.kind = Target::Kind::kTuple;
    return t;
  }

  // ---- expressions ----

  template <typename T>
  std::unique_ptr<T> node(const Loc& loc) {
    // The node count bounds the depth of the tree, which the scope analysis, the evaluator and the
    // destructors all recurse through.
    if (++expr_nodes_ > kMaxExprNodes)
      fail(cur(), "expression too large: more than " + std::to_string(kMaxExprNodes) + " parts");
    auto n = std::make_unique<T>();
    n->loc = loc;
    return n;
  }

  bool is_tuple_end(const std::vector<std::string>& extra_end) const {
    if (cur().type == Tok::kVarEnd || cur().type == Tok::kBlockEnd || cur().type == Tok::kEof) return true;
    if (is_op(")")) return true;
    return cur().type == Tok::kName && std::find(extra_end.begin(), extra_end.end(), cur().value) != extra_end.end();
  }

  ExprPtr parse_tuple(bool simplified, bool with_condexpr, const std::vector<std::string>& extra_end,
                      bool explicit_parens) {
    Loc loc = cur().loc;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (is_tuple_end(extra_end)) break;
      items.push_back(simplified ? parse_primary() : parse_expression(with_condexpr));
      if (is_op(",")) is_tuple = true;
      else break;
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parens) fail(cur(), "Expected an expression, got '" + describe(cur()) + "'");
    }
    auto l = node<ListExpr>(loc);
    l->items = std::move(items);
    l->tuple = true;
    return l;
  }

  ExprPtr parse_expression(bool with_condexpr) { return with_condexpr ? parse_condexpr() : parse_or(); }

  ExprPtr parse_condexpr() {
    ExprPtr e = parse_or();
    while (is_name("if")) {
      Loc loc = next().loc;
      bool saved = soft_;
      soft_ = true;
      auto c = node<CondExpr>(loc);
      c->then = std::move(e);
      c->cond = parse_or();
      if (skip_name("else")) c->otherwise = parse_condexpr();
      soft_ = saved;
      e = std::move(c);
    }
    return e;
  }

  ExprPtr binary(BinaryExpr::Op op, ExprPtr l, ExprPtr r, const Loc& loc) {
    auto b = node<BinaryExpr>(loc);
    b->op = op;
    b->left = std::move(l);
    b->right = std::move(r);
    return b;
  }

  ExprPtr parse_or() {
    ExprPtr l = parse_and();
    while (is_name("or")) {
      Loc loc = next().loc;
      l = binary(BinaryExpr::Op::kOr, std::move(l), parse_and(), loc);
    }
    return l;
  }
  ExprPtr parse_and() {
    ExprPtr l = parse_not();
    while (is_name("and")) {
      Loc loc = next().loc;
      l = binary(BinaryExpr::Op::kAnd, std::move(l), parse_not(), loc);
    }
    return l;
  }
  ExprPtr parse_not() {
    if (is_name("not")) {
      Loc loc = next().loc;
      auto u = node<UnaryExpr>(loc);
      u->op = UnaryExpr::Op::kNot;
      u->operand = parse_not();
      return u;
    }
    return parse_compare();
  }
  ExprPtr parse_compare() {
    Loc loc = cur().loc;
    ExprPtr first = parse_math1();
    std::vector<std::pair<CompareExpr::Op, ExprPtr>> rest;
    while (true) {
      using Op = CompareExpr::Op;
      if (cur().type == Tok::kOp) {
        const std::string& v = cur().value;
        Op op;
        if (v == "==") op = Op::kEq;
        else if (v == "!=") op = Op::kNe;
        else if (v == "<") op = Op::kLt;
        else if (v == "<=") op = Op::kLe;
        else if (v == ">") op = Op::kGt;
        else if (v == ">=") op = Op::kGe;
        else break;
        next();
        rest.emplace_back(op, parse_math1());
      } else if (is_name("in")) {
        next();
        rest.emplace_back(Op::kIn, parse_math1());
      } else if (is_name("not") && look().type == Tok::kName && look().value == "in") {
        next();
        next();
        rest.emplace_back(Op::kNotIn, parse_math1());
      } else {
        break;
      }
    }
    if (rest.empty()) return first;
    auto c = node<CompareExpr>(loc);
    c->first = std::move(first);
    c->rest = std::move(rest);
    return c;
  }
  ExprPtr parse_math1() {
    ExprPtr l = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Token& t = next();
      l = binary(t.value == "+" ? BinaryExpr::Op::kAdd : BinaryExpr::Op::kSub, std::move(l), parse_concat(), t.loc);
    }
    return l;
  }
  ExprPtr parse_concat() {
    Loc loc = cur().loc;
    ExprPtr first = parse_math2();
    if (!is_op("~")) return first;
    auto c = node<ConcatExpr>(loc);
    c->parts.push_back(std::move(first));
    while (skip_op("~")) c->parts.push_back(parse_math2());
    return c;
  }
  ExprPtr parse_math2() {
    ExprPtr l = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token& t = next();
      BinaryExpr::Op op = t.value == "*" ? BinaryExpr::Op::kMul
                          : t.value == "/" ? BinaryExpr::Op::kDiv
                          : t.value == "//" ? BinaryExpr::Op::kFloorDiv
                                            : BinaryExpr::Op::kMod;
      l = binary(op, std::move(l), parse_pow(), t.loc);
    }
    return l;
  }
  ExprPtr parse_pow() {
    ExprPtr l = parse_unary(true);
    while (is_op("**")) {
      Loc loc = next().loc;
      l = binary(BinaryExpr::Op::kPow, std::move(l), parse_unary(true), loc);
    }
    return l;
  }
  ExprPtr parse_unary(bool with_filter) {
    ExprPtr n;
    if (is_op("-") || is_op("+")) {
      const Token& t = next();
      auto u = node<UnaryExpr>(t.loc);
      u->op = t.value == "-" ? UnaryExpr::Op::kNeg : UnaryExpr::Op::kPos;
      u->operand = parse_unary(false);
      n = std::move(u);
    } else {
      n = parse_primary();
    }
    n = parse_postfix(std::move(n));
    if (with_filter) n = parse_filter_expr(std::move(n));
    return n;
  }

  ExprPtr parse_primary() {
    Nested nested(*this);
    const Token& t = cur();
    if (t.type == Tok::kName) {
      next();
      auto c = node<ConstExpr>(t.loc);
      if (t.value == "true" || t.value == "True") c->value = Value(true);
      else if (t.value == "false" || t.value == "False") c->value = Value(false);
      else if (t.value == "none" || t.value == "None") c->value = Value::none();
      else {
        auto nm = node<NameExpr>(t.loc);
        nm->name = t.value;
        return nm;
      }
      return c;
    }
    if (t.type == Tok::kString) {
      auto c = node<ConstExpr>(t.loc);
      std::string s;
      while (cur().type == Tok::kString) s += next().value;  // adjacent literals concatenate
      c->value = Value(std::move(s));
      return c;
    }
    if (t.type == Tok::kInt) {
      next();
      auto c = node<ConstExpr>(t.loc);
      c->value = int_token(t);
      return c;
    }
    if (t.type == Tok::kFloat) {
      next();
      auto c = node<ConstExpr>(t.loc);
      c->value = Value(std::strtod(t.value.c_str(), nullptr));
      return c;
    }
    if (is_op("(")) {
      next();
      ExprPtr e = parse_tuple(false, true, {}, true);
      expect_op(")");
      return e;
    }
    if (is_op("[")) {
      Loc loc = next().loc;
      auto l = node<ListExpr>(loc);
      while (!is_op("]")) {
        if (!l->items.empty()) expect_op(",");
        if (is_op("]")) break;
        l->items.push_back(parse_expression(true));
      }
      expect_op("]");
      return l;
    }
    if (is_op("{")) {
      Loc loc = next().loc;
      auto d = node<DictExpr>(loc);
      while (!is_op("}")) {
        if (!d->items.empty()) expect_op(",");
        if (is_op("}")) break;
        ExprPtr k = parse_expression(true);
        expect_op(":");
        d->items.emplace_back(std::move(k), parse_expression(true));
      }
      expect_op("}");
      return d;
    }
    fail(t, "unexpected '" + describe(t) + "'");
  }

  ExprPtr parse_postfix(ExprPtr n) {
    while (true) {
      if (is_op(".") || is_op("[")) n = parse_subscript(std::move(n));
      else if (is_op("(")) n = parse_call(std::move(n));
      else return n;
    }
  }

  ExprPtr parse_filter_expr(ExprPtr n) {
    while (true) {
      if (is_op("|")) n = parse_one_filter(std::move(n));
      else if (is_name("is")) n = parse_test(std::move(n));
      else if (is_op("(")) n = parse_call(std::move(n));
      else return n;
    }
  }

  ExprPtr parse_subscript(ExprPtr obj) {
    const Token& t = next();
    if (t.value == ".") {
      const Token& a = next();
      if (a.type == Tok::kName) {
        auto g = node<GetAttrExpr>(a.loc);
        g->obj = std::move(obj);
        g->name = a.value;
        return g;
      }
      if (a.type != Tok::kInt) fail(a, "expected name or number");
      auto g = node<GetItemExpr>(a.loc);
      g->obj = std::move(obj);
      auto c = node<ConstExpr>(a.loc);
      c->value = int_token(a);
      g->key = std::move(c);
      return g;
    }
    // '['
    Loc loc = t.loc;
    std::vector<ExprPtr> args;
    std::unique_ptr<SliceExpr> slice;
    while (!is_op("]")) {
      if (!args.empty() || slice) {
        expect_op(",");
        if (slice) unsupported_error(name_, cur().loc, "slices inside tuple subscripts (x[a:b, c]) are not supported");
        if (is_op("]")) break;
      }
      // parse_subscribed
      ExprPtr start;
      bool is_slice = false;
      if (is_op(":")) {
        is_slice = true;
      } else {
        start = parse_expression(true);
        if (!is_op(":")) {
          args.push_back(std::move(start));
          continue;
        }
        is_slice = true;
      }
      if (is_slice) {
        if (!args.empty()) unsupported_error(name_, cur().loc, "slices inside tuple subscripts (x[a, b:c]) are not supported");
        next();  // ':'
        auto s = node<SliceExpr>(loc);
        s->start = std::move(start);
        if (!is_op("]") && !is_op(",") && !is_op(":")) s->stop = parse_expression(true);
        if (skip_op(":")) {
          if (!is_op("]") && !is_op(",")) s->step = parse_expression(true);
        }
        slice = std::move(s);
      }
    }
    expect_op("]");
    if (slice) {
      slice->obj = std::move(obj);
      return slice;
    }
    auto g = node<GetItemExpr>(loc);
    g->obj = std::move(obj);
    if (args.size() == 1) {
      g->key = std::move(args[0]);
    } else {  // x[a, b] or x[]: a tuple key, which no list or string-keyed dict has
      auto t = node<ListExpr>(loc);
      t->items = std::move(args);
      t->tuple = true;
      g->key = std::move(t);
    }
    return g;
  }

  Args parse_call_args() {
    Args a;
    expect_op("(");
    bool require_comma = false;
    while (!is_op(")")) {
      if (require_comma) {
        expect_op(",");
        if (is_op(")")) break;
      }
      if (is_op("*")) {
        next();
        a.star = parse_expression(true);
      } else if (is_op("**")) {
        next();
        a.dstar = parse_expression(true);
      } else if (cur().type == Tok::kName && look().type == Tok::kOp && look().value == "=") {
        std::string key = next().value;
        next();
        a.kw.emplace_back(key, parse_expression(true));
      } else {
        if (a.star || a.dstar || !a.kw.empty()) fail(cur(), "invalid syntax for function call expression");
        a.pos.push_back(parse_expression(true));
      }
      require_comma = true;
    }
    expect_op(")");
    return a;
  }

  ExprPtr parse_call(ExprPtr callee) {
    Loc loc = callee->loc;  // errors of a call point at what is called
    auto c = node<CallExpr>(loc);
    c->callee = std::move(callee);
    c->args = parse_call_args();
    return c;
  }

  std::string dotted_name() {
    std::string n = expect_name().value;
    while (is_op(".")) {
      next();
      n += "." + expect_name().value;
    }
    return n;
  }

  std::unique_ptr<FilterExpr> parse_one_filter(ExprPtr value, bool inline_start = false) {
    if (!inline_start) expect_op("|");
    const Token& t = cur();
    auto f = node<FilterExpr>(t.loc);
    f->value = std::move(value);
    f->name = dotted_name();
    if (is_op("(")) f->args = parse_call_args();
    f->fn = find_filter(f->name);
    if (!f->fn) {
      if (is_jinja_builtin_filter(f->name))
        unsupported_error(name_, t.loc, "filter '" + f->name + "' is not supported by circuitscope's Jinja engine");
      if (!soft_) fail(t, "No filter named '" + f->name + "'.");
    }
    return f;
  }

  ExprPtr parse_test(ExprPtr value) {
    next();  // 'is'
    bool negated = skip_name("not");
    const Token& t = cur();
    auto e = node<TestExpr>(t.loc);
    e->value = std::move(value);
    e->negated = negated;
    e->name = dotted_name();
    if (is_op("(")) {
      e->args = parse_call_args();
    } else if ((cur().type == Tok::kName || cur().type == Tok::kString || cur().type == Tok::kInt ||
                cur().type == Tok::kFloat || is_op("(") || is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) fail(cur(), "You cannot chain multiple tests with is");
      e->args.pos.push_back(parse_postfix(parse_primary()));
    }
    e->fn = find_test(e->name);
    if (!e->fn && !soft_) fail(t, "No test named '" + e->name + "'.");  // every Jinja2 test is implemented
    return e;
  }

  std::vector<Token> toks_;
  size_t pos_ = 0;
  const std::string& name_;
  std::vector<Pending> pending_;
  bool soft_ = false;  // inside `if`/conditional expression: unknown filters fail only when reached
  int loop_depth_ = 0;
  // Limits against hostile templates (real ones stay far below): nodes in one expression and
  // nesting of blocks and brackets, which the parser recurses through.
  static constexpr int kMaxExprNodes = 4000;
  static constexpr int kMaxNesting = 200;
  int expr_nodes_ = 0;
  int nesting_ = 0;
  struct Nested {
    Parser& p;
    explicit Nested(Parser& parser) : p(parser) {
      if (++p.nesting_ > kMaxNesting)
        p.fail(p.cur(), "blocks or brackets nested deeper than " + std::to_string(kMaxNesting) + " levels");
    }
    ~Nested() { --p.nesting_; }
  };
};

// Jinja2 turns every \r\n, \r and \n into \n and drops one trailing newline
// (keep_trailing_newline=False).
std::string normalize_newlines(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r') {
      out += '\n';
      if (i + 1 < s.size() && s[i + 1] == '\n') ++i;
    } else {
      out += s[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace

std::shared_ptr<const Program> parse_program(const std::string& source, const std::string& name) {
  auto prog = std::make_shared<Program>();
  prog->name = name;
  const std::string src = normalize_newlines(source);
  std::vector<Token> tokens = Lexer(src, prog->name).run();
  prog->body = Parser(std::move(tokens), prog->name).parse_template();
  analyze_scopes(*prog);
  return prog;
}

}  // namespace circuitscope::jinja
