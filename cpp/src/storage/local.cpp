// Local files: plain paths and file:// URLs.
#include <cstring>
#include <filesystem>

#include "storage/options.h"
#include "util/posix_file.h"

namespace chute {

namespace fs = std::filesystem;

namespace {

class LocalObjectWriter final : public ObjectWriter {
 public:
  explicit LocalObjectWriter(std::unique_ptr<AtomicFileWriter> file) : file_(std::move(file)) {}
  Status Write(std::span<const std::byte> data) override { return file_->Write(data); }
  Status Close() override { return file_->Close(); }
  Status Abort() override {
    file_->Abort();
    return Status::OK();
  }

 private:
  std::unique_ptr<AtomicFileWriter> file_;
};

class LocalStorage final : public Storage {
 public:
  bool is_local() const override { return true; }
  std::string Url(const std::string& path) const override { return path; }
  double timeout() const override { return 0; }

  Result<uint64_t> Size(const std::string& path) override {
    std::error_code ec;
    auto size = fs::file_size(path, ec);
    if (ec) {
      if (ec == std::errc::no_such_file_or_directory) return Status::NotFound(path + ": no such file");
      return Status::IOError(path + ": " + ec.message());
    }
    return static_cast<uint64_t>(size);
  }

  Result<std::vector<ObjectInfo>> List(const std::string& dir) override {
    std::vector<ObjectInfo> out;
    std::error_code ec;
    for (auto& entry : fs::directory_iterator(dir, ec)) {
      if (entry.is_regular_file(ec)) out.push_back({entry.path().string(), entry.file_size(ec)});
    }
    if (ec && ec != std::errc::no_such_file_or_directory) return Status::IOError(dir + ": " + ec.message());
    return out;
  }

  Result<std::vector<ObjectInfo>> ListTree(const std::string& dir) override {
    std::vector<ObjectInfo> out;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
      std::error_code e;
      if (it->is_regular_file(e)) out.push_back({it->path().string(), it->file_size(e)});
    }
    if (ec && ec != std::errc::no_such_file_or_directory) return Status::IOError(dir + ": " + ec.message());
    return out;
  }

  Status ReadRange(const std::string& path, uint64_t offset, uint64_t length, std::byte* out) override {
    CHUTE_ASSIGN_OR_RETURN(auto file, MappedFile::Open(path));
    if (offset + length > file->size())
      return Status::Corrupt(path + ": truncated (" + std::to_string(file->size()) + " bytes, needed " +
                             std::to_string(offset + length) + ")");
    std::memcpy(out, file->data() + offset, length);
    return Status::OK();
  }

  Result<std::string> ReadAll(const std::string& path) override { return ReadFile(path); }

  Status Write(const std::string& path, std::span<const std::span<const std::byte>> parts, WriteMode mode) override {
    std::error_code ec;
    fs::create_directories(fs::path(path).parent_path(), ec);
    return WriteFileAtomic(path, parts, mode);
  }

  Result<std::unique_ptr<ObjectWriter>> OpenWriter(const std::string& path) override {
    std::error_code ec;
    fs::create_directories(fs::path(path).parent_path(), ec);
    CHUTE_ASSIGN_OR_RETURN(auto file, AtomicFileWriter::Open(path));
    return std::unique_ptr<ObjectWriter>(new LocalObjectWriter(std::move(file)));
  }

  Status Delete(const std::string& path) override {
    std::error_code ec;
    fs::remove(path, ec);
    if (ec) return Status::IOError(path + ": " + ec.message());
    return Status::OK();
  }
};

const bool registered = [] {
  RegisterStorage("file", [](const std::string&, const std::string& path,
                             const StorageOptions& options) -> Result<StorageLocation> {
    if (!options.empty())
      return Status::Invalid("storage options are not used for local paths (got '" + options.begin()->first + "')");
    return StorageLocation{std::make_shared<LocalStorage>(), path};
  });
  return true;
}();

}  // namespace
}  // namespace chute
