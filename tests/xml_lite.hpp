// A strict little XML parser for the tests of generated SVG: elements, attributes (quoted),
// text, comments, <?xml?> and <!DOCTYPE> prologs, and the five predefined entities (plus numeric
// ones). Anything else, an unbalanced tag or a duplicate attribute, throws std::runtime_error with
// the offset. Enough to check that a figure is well-formed and to look at its elements.
#pragma once
#include <cctype>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace cs_test {

struct XmlNode {
  std::string name;
  std::map<std::string, std::string> attrs;
  std::vector<std::unique_ptr<XmlNode>> children;
  std::string text;  // text directly inside (entities decoded)
  // Every descendant (self included) named `n`, in document order.
  void find_all(const std::string& n, std::vector<const XmlNode*>& out) const {
    if (name == n) out.push_back(this);
    for (const auto& c : children) c->find_all(n, out);
  }
  std::vector<const XmlNode*> all(const std::string& n) const {
    std::vector<const XmlNode*> out;
    find_all(n, out);
    return out;
  }
  std::string attr(const std::string& k) const {
    auto it = attrs.find(k);
    return it == attrs.end() ? "" : it->second;
  }
};

class XmlParser {
 public:
  explicit XmlParser(const std::string& s) : s_(s) {}
  std::unique_ptr<XmlNode> parse() {
    skip_prolog();
    auto root = element();
    skip_misc();
    if (i_ != s_.size()) fail("content after the root element");
    return root;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("XML: " + what + " at offset " + std::to_string(i_));
  }
  bool starts(const char* p) const { return s_.compare(i_, std::char_traits<char>::length(p), p) == 0; }
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t' || s_[i_] == '\r')) ++i_;
  }
  void skip_until(const char* end) {
    const size_t p = s_.find(end, i_);
    if (p == std::string::npos) fail(std::string("unterminated, expected ") + end);
    i_ = p + std::char_traits<char>::length(end);
  }
  void skip_misc() {
    for (;;) {
      ws();
      if (starts("<!--")) skip_until("-->");
      else if (starts("<?")) skip_until("?>");
      else return;
    }
  }
  void skip_prolog() {
    for (;;) {
      skip_misc();
      if (starts("<!DOCTYPE")) skip_until(">");
      else return;
    }
  }
  std::string name() {
    const size_t b = i_;
    while (i_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[i_])) || s_[i_] == '_' || s_[i_] == '-' ||
                              s_[i_] == ':' || s_[i_] == '.'))
      ++i_;
    if (b == i_) fail("expected a name");
    return s_.substr(b, i_ - b);
  }
  std::string decode(const std::string& t) const {
    std::string out;
    for (size_t k = 0; k < t.size(); ++k) {
      if (t[k] == '<') throw std::runtime_error("XML: '<' in text or an attribute value");
      if (t[k] != '&') {
        out += t[k];
        continue;
      }
      const size_t e = t.find(';', k);
      if (e == std::string::npos) throw std::runtime_error("XML: '&' without ';'");
      const std::string ent = t.substr(k + 1, e - k - 1);
      if (ent == "amp") out += '&';
      else if (ent == "lt") out += '<';
      else if (ent == "gt") out += '>';
      else if (ent == "quot") out += '"';
      else if (ent == "apos") out += '\'';
      else if (!ent.empty() && ent[0] == '#') out += '?';  // numeric: well-formed, value not needed
      else throw std::runtime_error("XML: unknown entity &" + ent + ";");
      k = e;
    }
    return out;
  }
  std::unique_ptr<XmlNode> element() {
    if (!starts("<")) fail("expected '<'");
    ++i_;
    auto n = std::make_unique<XmlNode>();
    n->name = name();
    for (;;) {
      ws();
      if (starts("/>")) {
        i_ += 2;
        return n;
      }
      if (starts(">")) {
        ++i_;
        break;
      }
      const std::string k = name();
      ws();
      if (!starts("=")) fail("expected '=' after attribute " + k);
      ++i_;
      ws();
      const char q = i_ < s_.size() ? s_[i_] : 0;
      if (q != '"' && q != '\'') fail("attribute " + k + " is not quoted");
      const size_t e = s_.find(q, i_ + 1);
      if (e == std::string::npos) fail("unterminated attribute " + k);
      if (n->attrs.count(k)) fail("duplicate attribute " + k);
      n->attrs[k] = decode(s_.substr(i_ + 1, e - i_ - 1));
      i_ = e + 1;
    }
    for (;;) {
      if (i_ >= s_.size()) fail("unclosed <" + n->name + ">");
      if (starts("<!--")) {
        skip_until("-->");
      } else if (starts("</")) {
        i_ += 2;
        const std::string end = name();
        if (end != n->name) fail("</" + end + "> closes <" + n->name + ">");
        ws();
        if (!starts(">")) fail("expected '>'");
        ++i_;
        return n;
      } else if (starts("<")) {
        n->children.push_back(element());
      } else {
        const size_t e = s_.find('<', i_);
        if (e == std::string::npos) fail("unclosed <" + n->name + ">");
        n->text += decode(s_.substr(i_, e - i_));
        i_ = e;
      }
    }
  }
  const std::string& s_;
  size_t i_ = 0;
};

inline std::unique_ptr<XmlNode> parse_xml(const std::string& s) { return XmlParser(s).parse(); }

}  // namespace cs_test
