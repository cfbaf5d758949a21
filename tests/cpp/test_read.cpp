// Unit tests of the read engine without Python: a Dataset over an in-memory object store
// (ranged reads, node cache, corruption), Reader batches against EpochOrder (shares and
// scheduled mode), and token batches.
// Run: test_read <temp dir>. Prints each failed check (file:line, expression) to stderr
// and "ok" last when all pass (exit 0). Built with CHUTE_SANITIZE=thread and run by
// tests/python/test_native.py.
#include "check.h"

namespace {

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
  Status Write(const std::string& path, std::span<const std::span<const std::byte>> parts, WriteMode) override {
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


}  // namespace

int main(int argc, char** argv) {
  const std::string tmp = argc > 1 ? argv[1] : "/tmp/chute-test-read";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  RegisterStorage("mem", [](const std::string&, const std::string& path, const StorageOptions&) {
    return Result<StorageLocation>(StorageLocation{mem, path});
  });
  TestRemoteDataset(tmp);
  TestReaderBatches(tmp);
  TestTokenReader(tmp);
  if (failures) {
    std::printf("%d checks failed\n", failures);
    return 1;
  }
  std::printf("ok\n");
  return 0;
}
