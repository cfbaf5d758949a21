// Unit tests of chute's format without Python: the item codec, index.json, chunk files
// (span checksums, damaged tables, truncation), and LruMap.
// Run: test_format <temp dir>. Prints each failed check (file:line, expression) to stderr
// and "ok" last when all pass (exit 0). Built with CHUTE_SANITIZE=thread and run by
// tests/python/test_native.py.
#include "check.h"

namespace {

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

// Checks every chunk the index.json of `dir` lists against `values`, in order; its chunks.
std::vector<ChunkInfo> CheckDataset(const std::string& dir, const std::vector<Value>& values) {
  auto index = ParseIndex(ReadText(dir + "/index.json"), dir + "/index.json");
  if (!CHECK_OK(index)) return {};
  uint64_t first = 0;
  for (auto& info : index->chunks) {
    if (!CHECK(first + info.num_items <= values.size())) return {};
    std::string text = ReadText(dir + "/" + info.file);
    const auto* p = reinterpret_cast<const std::byte*>(text.data());
    CheckChunk(std::vector<std::byte>(p, p + text.size()), info, &values[first], dir + "/" + info.file);
    first += info.num_items;
  }
  CHECK(first == values.size());
  return index->chunks;
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
    auto index = CheckDataset(dir, values);
    CHECK(index.size() >= 3 && index[0].num_bytes > (3 << kSpanShift));  // several spans
  }
}


// ---- 7. A dataset in parts, resumed ----------------------------------------------------
void TestParts(const std::string& tmp) {
  const auto values = RandomValues(30, 5);
  const std::string dir = tmp + "/parts";
  REQUIRE_OK(PrepareOutput(dir, false, {}));
  WriterOptions options;
  options.chunk_bytes = 200'000;
  std::vector<ChunkInfo> chunks, first_part;
  for (int part = 0; part < 2; ++part) {  // two parts of 15 items, as two workers would write them
    options.chunk_prefix = "chunk-0000" + std::to_string(part) + "-";
    auto writer = ChunkWriter::Create(dir, options);
    REQUIRE_OK(writer);
    for (size_t i = 15 * part; i < 15 * (part + 1); ++i) REQUIRE_OK((*writer)->Add(Inputs(values[i])));
    REQUIRE_OK((*writer)->Close());
    if (part == 0) first_part = (*writer)->chunks();
    chunks.insert(chunks.end(), (*writer)->chunks().begin(), (*writer)->chunks().end());
  }
  REQUIRE(first_part.size() >= 3 && first_part[0].file == "chunk-00000-000000.bin");
  REQUIRE_OK(WriteIndex(dir, chunks, R"({"note": "parts"})", ""));
  CHECK(CheckDataset(dir, values).size() == chunks.size());
  // A second PrepareOutput refuses the dataset, or replaces it (its chunks go).
  CHECK_ERROR(PrepareOutput(dir, false, {}), kInvalid, "already holds a chute dataset");
  // Resuming keeps the longest intact prefix of the chunks given back.
  options.chunk_prefix = "chunk-00000-";
  options.resume_chunks = first_part;
  auto all = ChunkWriter::Create(dir, options);
  REQUIRE_OK(all);
  CHECK((*all)->chunks().size() == first_part.size());
  {
    std::fstream f(dir + "/" + first_part[1].file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-3, std::ios::end);
    f.put('\x5a');  // damaged as a machine crash may leave it: same size, other bytes
  }
  auto damaged = ChunkWriter::Create(dir, options);
  REQUIRE_OK(damaged);
  CHECK((*damaged)->chunks().size() == 1 && (*damaged)->num_items() == first_part[0].num_items);
  fs::remove(dir + "/" + first_part[0].file);
  auto missing = ChunkWriter::Create(dir, options);
  REQUIRE_OK(missing);
  CHECK((*missing)->chunks().empty());
  options.resume_chunks = {first_part[1]};
  CHECK_ERROR(ChunkWriter::Create(dir, options), kInvalid, "out of sequence");
  REQUIRE_OK(PrepareOutput(dir, true, {}));
  size_t left = 0;
  for (auto& entry : fs::directory_iterator(dir)) left += entry.path().filename().string().starts_with("chunk-");
  CHECK(left == 0 && !fs::exists(dir + "/index.json"));
}

// ---- 8. Bulk writes (O_DIRECT where the file system takes it) --------------------------
void TestBulkWrites(const std::string& tmp) {
  std::mt19937 rng(7);
  const std::string a = RandomBytes((8 << 20) + 12345, rng), b = RandomBytes(777, rng);
  std::vector<std::span<const std::byte>> parts = {
      {reinterpret_cast<const std::byte*>(a.data()), a.size()}, {reinterpret_cast<const std::byte*>(b.data()), b.size()}};
  // tmp: a disk file system here; /dev/shm: tmpfs, which refuses O_DIRECT.
  for (std::string dir : {tmp, std::string("/dev/shm")}) {
    std::string path = dir + "/chute-bulk-" + std::to_string(::getpid());
    context = path;
    REQUIRE_OK(WriteFileAtomic(path, parts, WriteMode::kBulk));
    CHECK(ReadText(path) == a + b);
    REQUIRE_OK(WriteFileAtomic(path, {parts.data() + 1, 1}, WriteMode::kBulk));  // shorter than a block
    CHECK(ReadText(path) == b);
    fs::remove(path);
  }
  context.clear();
}

// ---- 9. Trace spans and counters ----------------------------------------------------------
void TestTrace() {
  { trace::Span before("before"); }  // not recording: nothing
  trace::StartTrace();
  uint64_t waited = trace::counters().data_wait_ns.load();
  {
    trace::Span outer("outer");
    trace::WaitTimer timer(trace::counters().data_wait_ns);
    trace::Span inner("inner");
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  std::thread([] { trace::Span other("other_thread"); }).join();
  std::vector<trace::Event> events = trace::StopTrace();
  { trace::Span after("after"); }
  REQUIRE(events.size() == 3);
  std::map<std::string, trace::Event> by_name;
  for (auto& e : events) by_name.emplace(e.name, e);
  REQUIRE(by_name.count("outer") && by_name.count("inner") && by_name.count("other_thread"));
  const trace::Event& outer = by_name.at("outer");
  const trace::Event& inner = by_name.at("inner");
  CHECK(inner.duration_ns >= 2'000'000 && outer.start_ns <= inner.start_ns &&
        inner.start_ns + inner.duration_ns <= outer.start_ns + outer.duration_ns);
  CHECK(outer.thread_id == inner.thread_id && by_name.at("other_thread").thread_id != outer.thread_id);
  CHECK(trace::counters().data_wait_ns.load() - waited >= 2'000'000);
}

// ---- 10. LruMap -----------------------------------------------------------------------
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
  const std::string tmp = argc > 1 ? argv[1] : "/tmp/chute-test-format";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  TestItemCodec();
  TestIndexFile();
  TestChunkFiles(tmp);
  TestParts(tmp);
  TestBulkWrites(tmp);
  TestTrace();
  TestLruMap();
  if (failures) {
    std::printf("%d checks failed\n", failures);
    return 1;
  }
  std::printf("ok\n");
  return 0;
}
