// Unit tests of the engine without Python: the item codec, index.json, chunk files
// (span checksums, damaged tables, truncation), a Dataset over an in-memory object store
// (ranged reads, node cache, corruption), Reader batches against EpochOrder (shares and
// scheduled mode), token batches, and LruMap.
// Run: test_engine <temp dir>. Prints each failed check (file:line, expression) to stderr
// and "ok" last when all pass (exit 0). Built with CHUTE_SANITIZE=thread and run by
// tests/python/test_native.py.
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
#include "chute/writer.h"
#include "format/chunk_file.h"
#include "format/chunk_layout.h"
#include "format/index_file.h"
#include "format/item_codec.h"
#include "util/json.h"
#include "util/lru_map.h"

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

// ---- 1. item codec -------------------------------------------------------------------
void TestItemCodec() {
  std::mt19937 rng(1);
  const Value all = {{LeafKind::kNull, {}, {}, ""},
                     {LeafKind::kBool, {}, {}, Raw(int64_t{1})},
                     Int(-1234567890123),
                     {LeafKind::kFloat, {}, {}, Raw(2.5)},
                     {LeafKind::kString, {}, {}, "h\xc3\xa9llo"},
                     {LeafKind::kBytes, {}, {}, RandomBytes(37, rng)},
                     Array({DType::kFloat, 32}, {2, 3}, rng),
                     Array({DType::kInt, 64}, {}, rng),  // 0-d
                     Array({DType::kUInt, 8}, {0}, rng),  // empty
                     Array({DType::kBool, 8}, {2, 2, 2}, rng),
                     Array({DType::kUInt, 16}, {5}, rng)};
  const Value small = {{LeafKind::kString, {}, {}, ""}, {LeafKind::kBytes, {}, {}, ""},
                       Array({DType::kInt, 32}, {4, 0}, rng), Array({DType::kBfloat, 16}, {3, 1, 2}, rng)};
  const Value none;  // an item without leaves
  for (const Value* value : {&all, &small, &none}) {
    const Value& v = *value;
    for (uint64_t start : {0, 8, 24, 72}) {
      context = "start " + std::to_string(start) + ", " + std::to_string(v.size()) + " leaves";
      auto in = Inputs(v);
      uint64_t size = EncodedItemSize(in, start);
      struct alignas(64) Line { std::byte b[64]{}; };
      std::vector<Line> buffer((start + size) / 64 + 1);  // zeroed; its start is stream position 0
      std::byte* base = buffer[0].b;
      EncodeItem(in, start, base + start);
      auto item = DecodeItem(base + start, size, nullptr, "item@" + std::to_string(start));
      if (!CHECK_OK(item)) continue;
      CHECK(Same(*item, v));
      for (auto& leaf : item->leaves) {
        auto addr = reinterpret_cast<uintptr_t>(leaf.data);
        if (leaf.kind == LeafKind::kArray) CHECK(addr % kArrayAlignment == 0);
        if (leaf.kind >= LeafKind::kBool && leaf.kind <= LeafKind::kFloat) CHECK(addr % 8 == 0);
      }
      if (value != &all) continue;
      CHECK(item->leaves[1].as_bool() && item->leaves[2].as_int() == -1234567890123);
      CHECK(item->leaves[3].as_float() == 2.5 && item->leaves[4].as_string() == "h\xc3\xa9llo");
      CHECK(item->leaves[7].shape.empty() && item->leaves[7].size == 8 && item->leaves[8].size == 0);
      // Damaged bytes: each error names the item.
      CHECK_ERROR(DecodeItem(base + start, 4, nullptr, "it7"), kCorrupt, "it7: malformed item (too short)");
      CHECK_ERROR(DecodeItem(base + start, size - 1, nullptr, "it8"), kCorrupt, "it8: malformed item");
      std::vector<std::byte> garbage(size, std::byte{0xA5});
      CHECK_ERROR(DecodeItem(garbage.data(), size, nullptr, "it9"), kCorrupt, "it9: malformed item");
      std::vector<std::byte> copy(base + start, base + start + size);
      copy[sizeof(ItemHeader)] = std::byte{7};  // leaf 0's kind
      CHECK_ERROR(DecodeItem(copy.data(), size, nullptr, "it10"), kCorrupt, "it10: malformed item (leaf kind)");
      copy.assign(base + start, base + start + size);
      int64_t dim = 3;  // the first shape (2x3 -> 3x3) no longer matches the payload
      std::memcpy(copy.data() + sizeof(ItemHeader) + v.size() * sizeof(LeafEntry), &dim, 8);
      CHECK_ERROR(DecodeItem(copy.data(), size, nullptr, "it11"), kCorrupt, "it11: malformed item (array size");
    }
  }
  context.clear();
}

// ---- 2. index.json -------------------------------------------------------------------
void TestIndexFile() {
  std::vector<ChunkInfo> chunks = {{"chunk-000000.bin", 10, 1000, 0x0123456789abcdefULL, -1},
                                   {"chunk-000001.bin", 5, 640, 42, 77}};
  const std::string schema = R"({"x": {"kind": "array", "dtype": "uint16"}, "y": {"kind": "int"}})";
  auto text = DumpIndex(chunks, schema, "zstd", R"({"note": 1})");
  REQUIRE_OK(text);
  auto index = ParseIndex(*text, "/data/ds/index.json");
  REQUIRE_OK(index);
  REQUIRE(index->chunks.size() == chunks.size());
  for (size_t k = 0; k < chunks.size(); ++k) {
    const ChunkInfo &a = index->chunks[k], &b = chunks[k];
    CHECK(a.file == b.file && a.num_items == b.num_items && a.num_bytes == b.num_bytes);
    CHECK(a.checksum == b.checksum && a.num_tokens == b.num_tokens);
  }
  CHECK(index->schema_json == json::Dump(*json::Parse(schema)));
  CHECK_ERROR(DumpIndex(chunks, "[1]", "", "{}"), kInvalid, "JSON objects");

  auto make = [](const std::string& format, uint64_t version, const std::string& file, int total) {
    return R"({"format": ")" + format + R"(", "version": )" + std::to_string(version) + R"(, "num_items": )" +
           std::to_string(total) + R"(, "schema": {}, "chunks": [{"file": ")" + file +
           R"(", "num_items": 3, "num_bytes": 100, "xxh3_64": "00000000000000ff"}]})";
  };
  const std::string path = "mem://bucket/ds/index.json";
  CHECK_OK(ParseIndex(make("chute", kFormatVersion, "c.bin", 3), path));  // the errors below are each one change
  CHECK_ERROR(ParseIndex("{not json", path), kCorrupt, path + ": not valid JSON");
  CHECK_ERROR(ParseIndex(make("other", kFormatVersion, "c.bin", 3), path), kCorrupt, path + ": not a chute index");
  CHECK_ERROR(ParseIndex(make("chute", kFormatVersion + 1, "c.bin", 3), path), kVersionMismatch, path);
  CHECK_ERROR(ParseIndex(make("chute", kFormatVersion, "../x", 3), path), kCorrupt, path + ": chunk file name '../x'");
  CHECK_ERROR(ParseIndex(make("chute", kFormatVersion, "c.bin", 4), path), kCorrupt, path + ": \"num_items\"");
}

// ---- 3. chunk files ------------------------------------------------------------------
// A chunk's bytes in memory. Wait checks bounds and records the ranges asked for.
class MemChunkBytes final : public ChunkBytes {
 public:
  explicit MemChunkBytes(std::vector<std::byte> bytes) : bytes_(std::move(bytes)) {}
  const std::byte* data() const override { return bytes_.data(); }
  size_t size() const override { return bytes_.size(); }
  Status Wait(uint64_t offset, uint64_t length) override {
    if (offset + length > bytes_.size()) return Status::Corrupt("wait past the end");
    std::lock_guard lock(mu_);
    waits_.emplace_back(offset, offset + length);
    return Status::OK();
  }
  std::vector<std::pair<uint64_t, uint64_t>> waits() {
    std::lock_guard lock(mu_);
    return waits_;
  }

 private:
  std::vector<std::byte> bytes_;
  std::mutex mu_;
  std::vector<std::pair<uint64_t, uint64_t>> waits_;
};

void CheckChunk(const std::vector<std::byte>& file, const ChunkInfo& info, const Value* expected,
                const std::string& url) {
  auto open = [&](std::vector<std::byte> bytes, bool verify) {
    return OpenChuteChunk(std::make_shared<MemChunkBytes>(std::move(bytes)), url, info, verify, nullptr);
  };
  auto good_bytes = std::make_shared<MemChunkBytes>(file);
  auto good = OpenChuteChunk(good_bytes, url, info, true, nullptr);
  REQUIRE_OK(good);
  for (uint64_t j = 0; j < info.num_items; ++j) {
    auto item = (*good)->GetItem(j);
    CHECK(item.ok() && Same(*item, expected[j]));
  }
  ChunkHeader h;
  std::memcpy(&h, file.data(), sizeof h);
  REQUIRE(h.num_items == info.num_items && h.span_shift == kSpanShift);
  REQUIRE(h.num_spans == (file.size() - h.data_offset + (1 << kSpanShift) - 1) >> kSpanShift);
  std::vector<uint64_t> offsets(h.num_items + 1);
  std::vector<BlockEntry> blocks(h.num_blocks);
  std::memcpy(offsets.data(), file.data() + sizeof h, offsets.size() * 8);
  std::memcpy(blocks.data(), file.data() + sizeof h + offsets.size() * 8, blocks.size() * sizeof(BlockEntry));
  const uint64_t tables = sizeof h + offsets.size() * 8 + blocks.size() * sizeof(BlockEntry) + h.num_spans * 8;
  const uint64_t span = uint64_t{1} << kSpanShift;
  // The file bytes item j is read from: its own, or its compressed block's.
  auto file_range = [&](uint64_t j) -> std::pair<uint64_t, uint64_t> {
    if (blocks.empty()) return {h.data_offset + offsets[j], h.data_offset + offsets[j + 1]};
    size_t b = 0;
    while (b + 1 < blocks.size() && blocks[b + 1].first_item <= j) ++b;
    return {blocks[b].file_offset, blocks[b].file_offset + blocks[b].file_size};
  };

  // One byte flipped in span k: exactly the items read from that span fail.
  for (uint64_t k = 0; k < h.num_spans; ++k) {
    context = url + " span " + std::to_string(k);
    uint64_t lo = h.data_offset + k * span, hi = std::min<uint64_t>(file.size(), lo + span);
    auto bad = file;
    bad[(lo + hi) / 2] ^= std::byte{0x40};
    auto reader = open(bad, true);
    if (!CHECK_OK(reader)) continue;
    for (uint64_t j = 0; j < h.num_items; ++j) {
      auto [from, to] = file_range(j);
      auto item = (*reader)->GetItem(j);
      if (from < hi && to > lo) CHECK_ERROR(item, kCorrupt, url + ": checksum mismatch");
      else CHECK(item.ok() && Same(*item, expected[j]));
    }
  }
  context.clear();
  // Damaged header or tables: the chunk does not open.
  for (uint64_t pos : {uint64_t{0}, uint64_t{56}, sizeof h + 8, tables - 1}) {
    auto bad = file;
    bad[pos] ^= std::byte{0x40};
    CHECK_ERROR(open(bad, true), kCorrupt, url + ": ");
  }
  auto cut = file;
  cut.pop_back();
  CHECK_ERROR(open(cut, true), kCorrupt, url + ": truncated");

  // A fresh reader waits for the header and tables, then only the spans of the item.
  auto bytes = std::make_shared<MemChunkBytes>(file);
  auto reader = OpenChuteChunk(bytes, url, info, true, nullptr);
  REQUIRE_OK(reader);
  const uint64_t last = h.num_items - 1;
  CHECK_OK((*reader)->GetItem(last));
  auto [from, to] = file_range(last);
  uint64_t lo = h.data_offset + (from - h.data_offset) / span * span;
  uint64_t hi = std::min<uint64_t>(file.size(), h.data_offset + ((to - 1 - h.data_offset) / span + 1) * span);
  for (auto [a, b] : bytes->waits()) CHECK(b <= tables || (a >= lo && b <= hi));

  if (!blocks.empty()) return;
  // Without verification (and no flags) a flipped payload byte goes unnoticed.
  const uint64_t flipped = h.num_items / 2;
  auto item = (*good)->GetItem(flipped);
  REQUIRE_OK(item);
  const LeafView& leaf = item->leaves[1];
  auto bad = file;
  bad[leaf.data - good_bytes->data() + leaf.size / 2] ^= std::byte{0x40};
  auto unverified = open(bad, false);
  REQUIRE_OK(unverified);
  for (uint64_t j = 0; j < h.num_items; ++j) {
    auto got = (*unverified)->GetItem(j);
    CHECK(got.ok() && Same(*got, expected[j]) == (j != flipped));
  }
}

void TestChunkFiles(const std::string& tmp) {
  const auto values = RandomValues(40, 3);
  for (std::string compression : {"", "zstd"}) {
    std::string dir = tmp + "/chunks-" + (compression.empty() ? "plain" : "zstd");
    WriterOptions options;
    options.chunk_bytes = 300'000;
    options.block_bytes = 100'000;
    options.compression = compression;
    REQUIRE_OK(WriteDataset(dir, values, options));
    auto index = ParseIndex(ReadText(dir + "/index.json"), dir + "/index.json");
    REQUIRE_OK(index);
    REQUIRE(index->chunks.size() >= 3 && index->chunks[0].num_bytes > (3 << kSpanShift));  // several spans
    uint64_t first = 0;
    for (auto& info : index->chunks) {
      std::string text = ReadText(dir + "/" + info.file);
      const auto* p = reinterpret_cast<const std::byte*>(text.data());
      CheckChunk(std::vector<std::byte>(p, p + text.size()), info, &values[first], dir + "/" + info.file);
      first += info.num_items;
    }
    CHECK(first == values.size());
  }
}

// ---- 4. a Dataset over an object store in memory -------------------------------------
// "mem://" objects, counting the ranged reads served.
class MemStorage final : public Storage {
 public:
  bool is_local() const override { return false; }
  std::string Url(const std::string& path) const override { return "mem://" + path; }
  double timeout() const override { return 10; }
  Result<uint64_t> Size(const std::string& path) override {
    std::lock_guard lock(mu_);
    CHUTE_ASSIGN_OR_RETURN(std::string* object, Find(path));
    return uint64_t{object->size()};
  }
  Result<std::vector<ObjectInfo>> List(const std::string& dir) override {
    std::lock_guard lock(mu_);
    std::vector<ObjectInfo> out;
    for (auto& [path, bytes] : objects_)
      if (path.starts_with(dir + "/") && path.find('/', dir.size() + 1) == std::string::npos)
        out.push_back({path, bytes.size()});
    return out;
  }
  Status ReadRange(const std::string& path, uint64_t offset, uint64_t length, std::byte* out) override {
    std::lock_guard lock(mu_);
    CHUTE_ASSIGN_OR_RETURN(std::string* object, Find(path));
    if (offset + length > object->size()) return Status::Corrupt(Url(path) + ": truncated");
    std::memcpy(out, object->data() + offset, length);
    ++range_reads;
    bytes_served += length;
    return Status::OK();
  }
  Result<std::string> ReadAll(const std::string& path) override {
    std::lock_guard lock(mu_);
    CHUTE_ASSIGN_OR_RETURN(std::string* object, Find(path));
    return *object;
  }
  Status Write(const std::string& path, std::span<const std::span<const std::byte>> parts) override {
    std::string bytes;
    for (auto p : parts) bytes.append(reinterpret_cast<const char*>(p.data()), p.size());
    std::lock_guard lock(mu_);
    objects_[path] = std::move(bytes);
    return Status::OK();
  }
  Status Delete(const std::string& path) override {
    std::lock_guard lock(mu_);
    objects_.erase(path);
    return Status::OK();
  }
  void FlipByte(const std::string& path, uint64_t pos) {
    std::lock_guard lock(mu_);
    objects_.at(path)[pos] ^= 0x40;
  }

  std::atomic<uint64_t> range_reads{0}, bytes_served{0};

 private:
  Result<std::string*> Find(const std::string& path) {  // mu_ held
    auto it = objects_.find(path);
    if (it == objects_.end()) return Status::NotFound(Url(path) + ": no such object");
    return &it->second;
  }

  std::mutex mu_;
  std::map<std::string, std::string> objects_;
};

const auto mem = std::make_shared<MemStorage>();

void TestRemoteDataset(const std::string& tmp) {
  const std::string url = "mem://bucket/ds";
  const auto values = RandomValues(60, 4);
  WriterOptions writer_options;
  writer_options.chunk_bytes = 600'000;
  REQUIRE_OK(WriteDataset(url, values, writer_options));
  {  // (a) No cache: chunks downloaded whole into memory.
    auto ds = Dataset::Open(url);
    REQUIRE_OK(ds);
    REQUIRE((*ds)->num_items() == values.size() && (*ds)->chunks().size() >= 3 && !(*ds)->is_local());
    for (uint64_t i = 0; i < values.size(); ++i) {
      auto item = (*ds)->GetItem(i);
      CHECK(item.ok() && Same(*item, values[i]));
    }
  }
  // (b) With a node cache: a single item is read by its ranges, a direct batch too, and
  // the batch's chunks are then fetched into the cache in the background.
  DatasetOptions options;
  options.cache_dir = tmp + "/cache";
  options.max_cache_size = 64 << 20;
  auto ds = Dataset::Open(url, options);
  REQUIRE_OK(ds);
  const Dataset& d = **ds;
  REQUIRE(!d.cache_path().empty());
  const uint64_t i = d.chunk_starts()[1] + 3;
  const uint64_t reads_before = mem->range_reads, bytes_before = mem->bytes_served;
  auto item = d.ReadItem(i);
  const uint64_t reads = mem->range_reads - reads_before, served = mem->bytes_served - bytes_before;
  CHECK(item.ok() && Same(*item, values[i]));
  // Header and tables (one or two reads), then the item's one or two 64 KiB spans.
  CHECK(reads >= 2 && reads <= 3 && served < d.chunks()[1].num_bytes / 3);
  std::vector<uint64_t> ids = {i, values.size() - 1};
  for (uint32_t c = 0; c < d.chunks().size(); ++c) ids.push_back(d.chunk_starts()[c] + 1);
  auto items = d.GetItems(ids, true);
  REQUIRE_OK(items);
  for (size_t k = 0; k < ids.size(); ++k) CHECK(Same((*items)[k], values[ids[k]]));
  auto all_cached = [&] {
    for (uint32_t c = 0; c < d.chunks().size(); ++c)
      if (!fs::exists(d.cache_path() + "/c" + std::to_string(c) + ".bin")) return false;
    return true;
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!all_cached() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(all_cached());
  for (uint64_t k = 0; k < values.size(); ++k) {
    auto got = d.GetItem(k);
    CHECK(got.ok() && Same(*got, values[k]));
  }

  // (c) A damaged stored chunk: downloads fail whole; ranged reads fail where they read it.
  const std::string chunk = "bucket/ds/" + d.chunks()[1].file;
  mem->FlipByte(chunk, d.chunks()[1].num_bytes / 2);
  auto fresh = Dataset::Open(url);
  REQUIRE_OK(fresh);
  CHECK_ERROR((*fresh)->GetItem(d.chunk_starts()[1]), kCorrupt, "mem://" + chunk + ": checksum mismatch");
  CHECK_OK((*fresh)->GetItem(0));
  options.cache_dir = tmp + "/cache2";  // the first cache holds the intact chunk
  auto ranged = Dataset::Open(url, options);
  REQUIRE_OK(ranged);
  uint64_t bad = 0;
  for (uint64_t k = d.chunk_starts()[1]; k < d.chunk_starts()[2]; ++k) {
    auto got = (*ranged)->ReadItem(k);
    if (got.ok()) CHECK(Same(*got, values[k]));
    else bad += CHECK_ERROR(got, kCorrupt, "mem://" + chunk + ": checksum mismatch");
  }
  CHECK(bad >= 1 && bad < d.chunks()[1].num_items);
}

// ---- 5. Reader batches against EpochOrder ---------------------------------------------
// Calls `f` on every batch `reader` gives.
Status ForEachBatch(Reader& reader, const std::function<void(Batch&)>& f) {
  for (Batch b;;) {
    CHUTE_ASSIGN_OR_RETURN(bool more, reader.Next(&b));
    if (!more) return Status::OK();
    f(b);
  }
}

// The batch's items are the ones its ids name (each item is one int leaf, its index).
bool ItemsMatchIds(const Batch& b) {
  if (b.items.size() != b.ids.size()) return false;
  for (size_t k = 0; k < b.ids.size(); ++k)
    if (b.items[k].leaves.size() != 1 || b.items[k].leaves[0].as_int() != static_cast<int64_t>(b.ids[k]))
      return false;
  return true;
}

// Reads the share of rank o.share.rank (one Reader per worker) and checks it against
// `order`: its m-th sample is position start + m * R + r, in batches of batch_size.
void CheckRank(const std::shared_ptr<const Dataset>& dataset, ReaderOptions o, const EpochOrder& order) {
  const uint32_t world = o.share.world_size, workers = o.share.num_workers;
  std::vector<std::vector<std::vector<uint64_t>>> read(workers);  // per worker: its batches' ids
  for (uint32_t w = 0; w < workers; ++w) {
    o.share.worker = w;
    auto reader = Reader::Make(dataset, o);
    REQUIRE_OK(reader);
    REQUIRE_OK(ForEachBatch(**reader, [&](Batch& b) {
      CHECK(ItemsMatchIds(b));
      read[w].push_back(b.ids);
    }));
  }
  std::vector<uint64_t> samples;  // the rank's, in order: batch k from worker k % W
  size_t num_batches = 0;
  for (auto& batches : read) num_batches += batches.size();
  for (size_t k = 0; k < num_batches; ++k) {
    REQUIRE(k / workers < read[k % workers].size());
    const auto& ids = read[k % workers][k / workers];
    CHECK(ids.size() == o.batch_size || k + 1 == num_batches);
    samples.insert(samples.end(), ids.begin(), ids.end());
  }
  const uint64_t n = order.size();
  CHECK(samples.size() == RankSampleCount(n - o.start, world, o.drop_last));
  uint64_t wrong = 0;
  for (uint64_t m = 0; m < samples.size(); ++m)
    wrong += samples[m] != order.At((o.start + m * world + o.share.rank) % n);
  CHECK(wrong == 0);
}

void TestReaderBatches(const std::string& tmp) {
  const uint64_t n = 1000;
  std::vector<Value> values;
  for (uint64_t i = 0; i < n; ++i) values.push_back({Int(static_cast<int64_t>(i))});
  WriterOptions writer_options;
  writer_options.chunk_items = 77;  // 12 chunks of 77, one of 76
  REQUIRE_OK(WriteDataset(tmp + "/order", values, writer_options));
  auto ds = Dataset::Open(tmp + "/order");
  REQUIRE_OK(ds);
  std::shared_ptr<const Dataset> dataset = *ds;
  REQUIRE(dataset->chunks().size() == 13);
  std::vector<uint64_t> sizes;
  for (auto& c : dataset->chunks()) sizes.push_back(c.num_items);

  ReaderOptions o;
  for (bool shuffle : {false, true}) {
    o.order = {shuffle, 7, 1, 6, 50};  // 6 partitions: divisible by every world size
    EpochOrder order(sizes, o.order);
    for (uint32_t world : {1, 2, 3})
      for (uint32_t workers : {1, 2})
        for (uint64_t batch : {1, 7, 64})
          for (bool drop_last : {false, true})
            for (uint64_t start : {0, 437})
              for (uint32_t rank = 0; rank < world; ++rank) {
                o.share = {rank, world, 0, workers};
                o.batch_size = batch;
                o.drop_last = drop_last;
                o.start = start;
                char config[128];
                std::snprintf(config, sizeof config, "shuffle %d rank %u/%u workers %u batch %d drop_last %d start %d",
                              shuffle, rank, world, workers, int(batch), drop_last, int(start));
                context = config;
                CheckRank(dataset, o, order);
              }
  }
  context.clear();

  // Scheduled mode: the batches given, in order, then none.
  o = {};
  o.order = {true, 7, 1, 6, 50};
  o.scheduled = true;
  EpochOrder order(sizes, o.order);
  auto reader = Reader::Make(dataset, o);
  REQUIRE_OK(reader);
  const uint64_t slices[][3] = {{5, 3, 4}, {990, 7, 5}, {0, 1, 64}};  // start, stride, count
  for (auto& s : slices) CHECK_OK((*reader)->Schedule(s[0], s[1], s[2]));
  size_t k = 0;
  CHECK_OK(ForEachBatch(**reader, [&](Batch& b) {
    if (!CHECK(k < std::size(slices))) return;
    const uint64_t* s = slices[k++];
    std::vector<uint64_t> expected;
    for (uint64_t j = 0; j < s[2]; ++j) expected.push_back(order.At((s[0] + j * s[1]) % n));
    CHECK(b.ids == expected && ItemsMatchIds(b));
  }));
  CHECK(k == std::size(slices));
  auto share = Reader::Make(dataset, ReaderOptions{});
  REQUIRE_OK(share);
  CHECK_ERROR((*share)->Schedule(0, 1, 1), kInvalid, "scheduled");
}

// ---- 6. token batches ----------------------------------------------------------------
void TestTokenReader(const std::string& tmp) {
  std::mt19937 rng(6);
  std::vector<uint16_t> stream;  // all documents' tokens, in order
  std::vector<Value> docs;
  for (int d = 0; d < 300; ++d) {
    std::vector<uint16_t> doc(1 + rng() % 500);
    for (auto& t : doc) t = static_cast<uint16_t>(rng());
    stream.insert(stream.end(), doc.begin(), doc.end());
    docs.push_back({{LeafKind::kArray, {DType::kUInt, 16}, {static_cast<int64_t>(doc.size())},
                     std::string(reinterpret_cast<const char*>(doc.data()), doc.size() * 2)}});
  }
  WriterOptions writer_options;
  writer_options.chunk_bytes = 30'000;
  REQUIRE_OK(WriteDataset(tmp + "/tokens", docs, writer_options));
  auto ds = Dataset::Open(tmp + "/tokens");
  REQUIRE_OK(ds);
  REQUIRE((*ds)->chunks().size() >= 3);
  const uint64_t block = 33;
  auto blocks = TokenBlocks::Make(*ds, block);
  REQUIRE_OK(blocks);
  const uint64_t num_blocks = (*blocks)->num_blocks();
  CHECK((*blocks)->num_tokens() == stream.size() && num_blocks == stream.size() / block);
  ReaderOptions o;
  o.order.shuffle = true;
  o.token_dtype = {DType::kInt, 64};
  o.gather_threads = 2;
  o.gather_ahead = 2;
  o.batch_size = 5;
  auto reader = Reader::Make(std::shared_ptr<const TokenBlocks>(*blocks), o);
  REQUIRE_OK(reader);
  std::vector<int> seen(num_blocks);
  uint64_t total = 0, wrong = 0;
  CHECK_OK(ForEachBatch(**reader, [&](Batch& b) {
    const auto* tokens = reinterpret_cast<const int64_t*>(b.tokens.get());
    if (!CHECK(tokens && reinterpret_cast<uintptr_t>(tokens) % 64 == 0)) return;
    for (size_t k = 0; k < b.ids.size(); ++k) {
      if (!CHECK(b.ids[k] < num_blocks)) return;
      ++seen[b.ids[k]];
      for (uint64_t x = 0; x < block; ++x) wrong += tokens[k * block + x] != stream[b.ids[k] * block + x];
    }
    total += b.ids.size();
  }));
  CHECK(wrong == 0);
  CHECK(total == num_blocks);  // world 1, no drop_last: each block once, no wrap-around
  CHECK(std::all_of(seen.begin(), seen.end(), [](int s) { return s == 1; }));
}

// ---- 7. LruMap -----------------------------------------------------------------------
void TestLruMap() {
  LruMap<std::string, int> lru(2);
  lru.Insert("a", 1);
  lru.Insert("b", 2);
  CHECK(lru.Find("a") && *lru.Find("a") == 1);  // a is now the most recent
  CHECK(lru.Insert("a", 9) == 1);               // present: kept
  lru.Insert("c", 3);                           // evicts b, the least recent
  CHECK(lru.size() == 2 && !lru.Find("b") && lru.Find("a") && lru.Find("c") && *lru.Find("c") == 3);
  lru.Erase("a");
  lru.Erase("zz");  // absent: no-op
  CHECK(lru.size() == 1 && !lru.Find("a") && lru.Find("c"));
  // Bounded by weight too; the newest entry is kept even when it alone is too heavy.
  LruMap<int, int> heavy(10, 100);
  heavy.Insert(1, 1, 60);
  heavy.Insert(2, 2, 30);
  CHECK(heavy.size() == 2);
  heavy.Insert(3, 3, 20);  // 110 > 100: evicts 1
  CHECK(heavy.size() == 2 && !heavy.Find(1) && heavy.Find(2) && heavy.Find(3));
  heavy.Insert(4, 4, 500);
  CHECK(heavy.size() == 1 && heavy.Find(4));
}

}  // namespace

int main(int argc, char** argv) {
  const std::string tmp = argc > 1 ? argv[1] : "/tmp/chute-test-engine";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  RegisterStorage("mem", [](const std::string&, const std::string& path, const StorageOptions&) {
    return Result<StorageLocation>(StorageLocation{mem, path});
  });
  TestItemCodec();
  TestIndexFile();
  TestChunkFiles(tmp);
  TestRemoteDataset(tmp);
  TestReaderBatches(tmp);
  TestTokenReader(tmp);
  TestLruMap();
  if (failures) {
    std::printf("%d checks failed\n", failures);
    return 1;
  }
  std::printf("ok\n");
  return 0;
}
