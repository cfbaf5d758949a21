// A tiny test harness and the values the C++ unit tests write and read back (GoogleTest
// is not available from the package registries CI installs from). Included by one test
// program each: its definitions are per program.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "chute/dataset.h"
#include "chute/order.h"
#include "chute/reader.h"
#include "chute/tokens.h"
#include "chute/trace.h"
#include "chute/writer.h"
#include "format/chunk_file.h"
#include "format/chunk_layout.h"
#include "format/index_file.h"
#include "format/item_codec.h"
#include "util/json.h"
#include "util/lru_map.h"
#include "util/posix_file.h"

using namespace chute;
namespace fs = std::filesystem;

namespace {

// ---- a tiny harness ------------------------------------------------------------------
int failures = 0;
std::string context;  // printed with failures inside loops (which configuration)

bool Fail(const char* file, int line, const std::string& what) {
  ++failures;
  std::fprintf(stderr, "%s:%d: FAILED: %s%s\n", file, line, what.c_str(),
               context.empty() ? "" : (" [" + context + "]").c_str());
  return false;
}
const Status& StatusOf(const Status& s) { return s; }
template <typename T>
const Status& StatusOf(const Result<T>& r) { return r.status(); }
bool CheckOk(const Status& st, const char* file, int line, const char* expr) {
  return st.ok() || Fail(file, line, std::string(expr) + " -> " + st.ToString());
}
bool CheckError(const Status& st, StatusCode code, const std::string& text, const char* file, int line,
                const char* expr) {
  if (st.code() == code && st.message().find(text) != std::string::npos) return true;
  return Fail(file, line, std::string(expr) + " -> " + (st.ok() ? "OK" : st.ToString()) + "; expected code " +
                              std::to_string(static_cast<int>(code)) + " with '" + text + "'");
}

#define CHECK(cond) ((cond) ? true : Fail(__FILE__, __LINE__, #cond))
#define CHECK_OK(expr) CheckOk(StatusOf(expr), __FILE__, __LINE__, #expr)
// Fails with `code` and a message containing `text`.
#define CHECK_ERROR(expr, code, text) CheckError(StatusOf(expr), StatusCode::code, text, __FILE__, __LINE__, #expr)
// What follows depends on these: the test function returns when they fail.
#define REQUIRE(cond) do { if (!CHECK(cond)) return; } while (0)
#define REQUIRE_OK(expr) do { if (!CHECK_OK(expr)) return; } while (0)

// ---- values written and read back ----------------------------------------------------
// A leaf owned by the test: written through a LeafInput, compared with a LeafView.
struct Leaf {
  LeafKind kind = LeafKind::kNull;
  DType dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};
using Value = std::vector<Leaf>;

template <typename T>
std::string Raw(const T& v) { return std::string(reinterpret_cast<const char*>(&v), sizeof v); }
std::string RandomBytes(size_t n, std::mt19937& rng) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}
Leaf Int(int64_t v) { return {LeafKind::kInt, {}, {}, Raw(v)}; }
Leaf Array(DType dtype, std::vector<int64_t> shape, std::mt19937& rng) {
  size_t n = dtype.itemsize();
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  return {LeafKind::kArray, dtype, std::move(shape), RandomBytes(n, rng)};
}

std::vector<LeafInput> Inputs(const Value& value) {
  std::vector<LeafInput> out;
  for (auto& l : value) out.push_back({l.kind, l.dtype, l.shape, l.bytes.data(), l.bytes.size()});
  return out;
}

bool Same(const Item& item, const Value& value) {
  if (item.leaves.size() != value.size()) return false;
  for (size_t k = 0; k < value.size(); ++k) {
    const LeafView& a = item.leaves[k];
    const Leaf& b = value[k];
    if (a.kind != b.kind || a.size != b.bytes.size() || (a.size && std::memcmp(a.data, b.bytes.data(), a.size)))
      return false;
    if (a.kind == LeafKind::kArray ? a.dtype != b.dtype || a.shape != b.shape : !a.shape.empty()) return false;
  }
  return true;
}

// Items of an int (their index) and 20-40 KB of random (incompressible) bytes: chunks
// of a few hundred KB hold several 64 KiB checksum spans, compressed or not.
std::vector<Value> RandomValues(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<Value> values;
  for (size_t i = 0; i < n; ++i) {
    Leaf bytes{LeafKind::kBytes, {}, {}, RandomBytes(20000 + rng() % 20000, rng)};
    values.push_back({Int(static_cast<int64_t>(i)), std::move(bytes)});
  }
  return values;
}

Status WriteDataset(const std::string& url, const std::vector<Value>& values, const WriterOptions& options) {
  CHUTE_ASSIGN_OR_RETURN(auto writer, DatasetWriter::Create(url, options));
  for (auto& v : values) CHUTE_RETURN_NOT_OK(writer->Add(Inputs(v)));
  return writer->Finish(R"({"note": "test_engine"})");
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

}  // namespace
