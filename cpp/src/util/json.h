// A small JSON value with parse and dump, for index.json (small, read once per process).
// Objects keep their key order so a dump of a parsed document is stable.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "chute/status.h"

namespace chute::json {

struct Value;
using Array = std::vector<Value>;
using Object = std::vector<std::pair<std::string, Value>>;

struct Value {
  std::variant<std::nullptr_t, bool, int64_t, double, std::string, Array, Object> v;

  Value() : v(nullptr) {}
  Value(std::nullptr_t) : v(nullptr) {}
  Value(bool b) : v(b) {}
  Value(int64_t i) : v(i) {}
  Value(uint64_t i) : v(static_cast<int64_t>(i)) {}
  Value(int i) : v(static_cast<int64_t>(i)) {}
  Value(double d) : v(d) {}
  Value(std::string s) : v(std::move(s)) {}
  Value(const char* s) : v(std::string(s)) {}
  Value(Array a) : v(std::move(a)) {}
  Value(Object o) : v(std::move(o)) {}

  bool is_null() const { return std::holds_alternative<std::nullptr_t>(v); }
  const Object* object() const { return std::get_if<Object>(&v); }
  const Array* array() const { return std::get_if<Array>(&v); }
  const std::string* string() const { return std::get_if<std::string>(&v); }
  const int64_t* integer() const { return std::get_if<int64_t>(&v); }
  const bool* boolean() const { return std::get_if<bool>(&v); }
  // Member `key` of an object, or nullptr.
  const Value* get(const std::string& key) const;
};

Result<Value> Parse(const std::string& text);
std::string Dump(const Value& value, int indent = -1);

}  // namespace chute::json
