// chute's own format as a source (chute/source.h): index.json plus chunk files.
#include "chute/source.h"
#include "format/chunk_file.h"
#include "format/index_file.h"

namespace chute {

namespace {

class ChuteSource final : public Source {
 public:
  ChuteSource(std::string index_text, ChuteIndex index)
      : index_text_(std::move(index_text)), index_(std::move(index)) {}

  const std::string& index_name() const override {
    static const std::string name = "index.json";
    return name;
  }
  const std::string& format() const override {
    static const std::string name = "chute";
    return name;
  }
  const std::vector<ChunkInfo>& chunks() const override { return index_.chunks; }
  const std::string& schema_json() const override { return index_.schema_json; }
  const std::string& description() const override { return index_text_; }
  const std::string& compression() const override { return index_.compression; }
  uint64_t TablesSizeHint(uint32_t c) const override { return ChunkTablesSizeHint(index_.chunks[c]); }
  uint64_t NumCheckFlags(uint32_t c) const override { return MaxSpanFlags(index_.chunks[c].num_bytes); }
  Result<std::shared_ptr<ChunkReader>> OpenChunk(uint32_t c, std::shared_ptr<ChunkBytes> bytes, const std::string& url,
                                                 bool verify, std::atomic<uint8_t>* check_flags) const override {
    return OpenChuteChunk(std::move(bytes), url, index_.chunks[c], verify, check_flags);
  }

 private:
  std::string index_text_;
  ChuteIndex index_;
};

Result<std::shared_ptr<Source>> OpenChute(const SourceLocation& location, const std::string& description) {
  Storage& storage = *location.storage;
  const std::string index_path = JoinPath(location.root, "index.json");
  Result<std::string> text = description;
  if (description.empty()) text = storage.ReadAll(index_path);
  if (!text.ok()) {
    if (text.status().code() == StatusCode::kNotFound)
      return Status::NotFound(storage.Url(index_path) + " does not exist: " + location.url +
                              " is not a chute dataset, or chute.optimize did not finish writing it (" +
                              text.status().message() + ")");
    return text.status();
  }
  CHUTE_ASSIGN_OR_RETURN(ChuteIndex index, ParseIndex(*text, storage.Url(index_path)));
  return std::shared_ptr<Source>(std::make_shared<ChuteSource>(std::move(*text), std::move(index)));
}

const bool registered = (RegisterSource("chute", OpenChute), true);

}  // namespace

}  // namespace chute
