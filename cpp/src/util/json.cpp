#include "util/json.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace chute::json {

const Value* Value::get(const std::string& key) const {
  if (auto* o = object()) {
    for (auto& [k, val] : *o)
      if (k == key) return &val;
  }
  return nullptr;
}

namespace {

class Parser {
 public:
  explicit Parser(const std::string& s) : s_(s) {}

  Result<Value> Document() {
    Value v;
    CHUTE_RETURN_NOT_OK(ParseValue(v, 0));
    SkipSpace();
    if (pos_ != s_.size()) return Error("trailing characters");
    return v;
  }

 private:
  Status Error(const std::string& what) const {
    return Status::Invalid("JSON " + what + " at byte " + std::to_string(pos_));
  }
  void SkipSpace() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\r' || s_[pos_] == '\t'))
      ++pos_;
  }
  bool Consume(const char* word) {
    size_t n = std::char_traits<char>::length(word);
    if (s_.compare(pos_, n, word) != 0) return false;
    pos_ += n;
    return true;
  }

  Status ParseValue(Value& out, int depth) {
    if (depth > 256) return Error("nesting too deep");
    SkipSpace();
    if (pos_ >= s_.size()) return Error("unexpected end");
    char c = s_[pos_];
    if (c == '{') return ParseObject(out, depth);
    if (c == '[') return ParseArray(out, depth);
    if (c == '"') {
      std::string str;
      CHUTE_RETURN_NOT_OK(ParseString(str));
      out = Value(std::move(str));
      return Status::OK();
    }
    if (Consume("null")) { out = Value(nullptr); return Status::OK(); }
    if (Consume("true")) { out = Value(true); return Status::OK(); }
    if (Consume("false")) { out = Value(false); return Status::OK(); }
    return ParseNumber(out);
  }

  Status ParseObject(Value& out, int depth) {
    ++pos_;
    Object obj;
    SkipSpace();
    if (pos_ < s_.size() && s_[pos_] == '}') { ++pos_; out = Value(std::move(obj)); return Status::OK(); }
    while (true) {
      SkipSpace();
      if (pos_ >= s_.size() || s_[pos_] != '"') return Error("expected object key");
      std::string key;
      CHUTE_RETURN_NOT_OK(ParseString(key));
      SkipSpace();
      if (pos_ >= s_.size() || s_[pos_] != ':') return Error("expected ':'");
      ++pos_;
      Value val;
      CHUTE_RETURN_NOT_OK(ParseValue(val, depth + 1));
      obj.emplace_back(std::move(key), std::move(val));
      SkipSpace();
      if (pos_ < s_.size() && s_[pos_] == ',') { ++pos_; continue; }
      if (pos_ < s_.size() && s_[pos_] == '}') { ++pos_; break; }
      return Error("expected ',' or '}'");
    }
    out = Value(std::move(obj));
    return Status::OK();
  }

  Status ParseArray(Value& out, int depth) {
    ++pos_;
    Array arr;
    SkipSpace();
    if (pos_ < s_.size() && s_[pos_] == ']') { ++pos_; out = Value(std::move(arr)); return Status::OK(); }
    while (true) {
      Value val;
      CHUTE_RETURN_NOT_OK(ParseValue(val, depth + 1));
      arr.push_back(std::move(val));
      SkipSpace();
      if (pos_ < s_.size() && s_[pos_] == ',') { ++pos_; continue; }
      if (pos_ < s_.size() && s_[pos_] == ']') { ++pos_; break; }
      return Error("expected ',' or ']'");
    }
    out = Value(std::move(arr));
    return Status::OK();
  }

  Status ParseHex4(uint32_t& cp) {
    if (pos_ + 4 > s_.size()) return Error("truncated \\u escape");
    cp = 0;
    for (int k = 0; k < 4; ++k) {
      char h = s_[pos_++];
      cp <<= 4;
      if (h >= '0' && h <= '9') cp |= h - '0';
      else if (h >= 'a' && h <= 'f') cp |= h - 'a' + 10;
      else if (h >= 'A' && h <= 'F') cp |= h - 'A' + 10;
      else return Error("bad \\u escape");
    }
    return Status::OK();
  }

  static void AppendUtf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  Status ParseString(std::string& out) {
    ++pos_;  // opening quote
    while (pos_ < s_.size()) {
      char c = s_[pos_++];
      if (c == '"') return Status::OK();
      if (c != '\\') { out += c; continue; }
      if (pos_ >= s_.size()) break;
      char e = s_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp;
          CHUTE_RETURN_NOT_OK(ParseHex4(cp));
          if (cp >= 0xD800 && cp < 0xDC00 && s_.compare(pos_, 2, "\\u") == 0) {
            pos_ += 2;
            uint32_t lo;
            CHUTE_RETURN_NOT_OK(ParseHex4(lo));
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          AppendUtf8(out, cp);
          break;
        }
        default: return Error("bad escape");
      }
    }
    return Error("unterminated string");
  }

  Status ParseNumber(Value& out) {
    size_t start = pos_;
    bool is_float = false;
    if (pos_ < s_.size() && s_[pos_] == '-') ++pos_;
    while (pos_ < s_.size()) {
      char c = s_[pos_];
      if (c >= '0' && c <= '9') { ++pos_; continue; }
      if (c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') { is_float = true; ++pos_; continue; }
      break;
    }
    if (pos_ == start) return Error("unexpected character");
    std::string num = s_.substr(start, pos_ - start);
    char* end = nullptr;
    if (!is_float) {
      errno = 0;
      long long i = std::strtoll(num.c_str(), &end, 10);
      if (errno == 0 && *end == '\0') { out = Value(static_cast<int64_t>(i)); return Status::OK(); }
    }
    double d = std::strtod(num.c_str(), &end);
    if (*end != '\0') return Error("bad number");
    out = Value(d);
    return Status::OK();
  }

  const std::string& s_;
  size_t pos_ = 0;
};

void DumpString(const std::string& s, std::string& out) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

void DumpValue(const Value& value, int indent, int level, std::string& out) {
  auto newline = [&](int lvl) {
    if (indent < 0) return;
    out += '\n';
    out.append(static_cast<size_t>(indent * lvl), ' ');
  };
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::nullptr_t>) {
          out += "null";
        } else if constexpr (std::is_same_v<T, bool>) {
          out += x ? "true" : "false";
        } else if constexpr (std::is_same_v<T, int64_t>) {
          out += std::to_string(x);
        } else if constexpr (std::is_same_v<T, double>) {
          if (!std::isfinite(x)) { out += "null"; return; }
          char buf[32];
          std::snprintf(buf, sizeof buf, "%.17g", x);
          out += buf;
        } else if constexpr (std::is_same_v<T, std::string>) {
          DumpString(x, out);
        } else if constexpr (std::is_same_v<T, Array>) {
          out += '[';
          for (size_t k = 0; k < x.size(); ++k) {
            if (k) out += ',';
            newline(level + 1);
            DumpValue(x[k], indent, level + 1, out);
          }
          if (!x.empty()) newline(level);
          out += ']';
        } else {
          out += '{';
          for (size_t k = 0; k < x.size(); ++k) {
            if (k) out += ',';
            newline(level + 1);
            DumpString(x[k].first, out);
            out += indent < 0 ? ":" : ": ";
            DumpValue(x[k].second, indent, level + 1, out);
          }
          if (!x.empty()) newline(level);
          out += '}';
        }
      },
      value.v);
}

}  // namespace

Result<Value> Parse(const std::string& text) { return Parser(text).Document(); }

std::string Dump(const Value& value, int indent) {
  std::string out;
  DumpValue(value, indent, 0, out);
  return out;
}

}  // namespace chute::json
