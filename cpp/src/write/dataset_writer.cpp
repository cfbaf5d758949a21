// The dataset-level steps of writing (chute/writer.h): PrepareOutput, WriteIndex, and
// DatasetWriter, which runs them around one ChunkWriter.
#include <filesystem>
#include <set>

#include "chute/writer.h"
#include "format/index_file.h"
#include "util/codec.h"

namespace chute {

namespace fs = std::filesystem;

Status PrepareOutput(const std::string& url, bool overwrite, const std::vector<std::string>& keep_chunks,
                     const StorageOptions& storage_options) {
  CHUTE_ASSIGN_OR_RETURN(StorageLocation location, OpenStorage(url, storage_options));
  Storage& storage = *location.storage;
  if (storage.is_local()) {
    std::error_code ec;
    fs::create_directories(location.path, ec);
    if (ec) return Status::IOError(url + ": cannot create the output directory: " + ec.message());
  }
  std::string index = JoinPath(location.path, "index.json");
  auto existing = storage.Size(index);
  if (existing.ok() && !overwrite)
    return Status::Invalid(url + " already holds a chute dataset (index.json); "
                           "choose another output_dir or pass overwrite=True");
  if (!existing.ok() && existing.status().code() != StatusCode::kNotFound) return existing.status();
  if (existing.ok()) CHUTE_RETURN_NOT_OK(storage.Delete(index));
  std::set<std::string> kept(keep_chunks.begin(), keep_chunks.end());
  CHUTE_ASSIGN_OR_RETURN(auto objects, storage.List(location.path));
  for (auto& object : objects) {
    std::string name = object.path.substr(object.path.find_last_of('/') + 1);
    // Also the temporary files of chunks whose writer was stopped (chunk-*.bin.tmp-<pid>).
    bool chunk = name.starts_with("chunk-") && (name.ends_with(".bin") || name.find(".bin.tmp-") != std::string::npos);
    if (chunk && !kept.count(name))
      CHUTE_RETURN_NOT_OK(storage.Delete(object.path));
  }
  return Status::OK();
}

Status WriteIndex(const std::string& url, const std::vector<ChunkInfo>& chunks, const std::string& schema_json,
                  const std::string& compression, const std::string& metadata_json,
                  const StorageOptions& storage_options) {
  CHUTE_ASSIGN_OR_RETURN(CompressionSpec spec, CompressionSpec::Parse(compression));
  CHUTE_ASSIGN_OR_RETURN(std::string text, DumpIndex(chunks, schema_json, spec.ToString(), metadata_json));
  CHUTE_ASSIGN_OR_RETURN(StorageLocation location, OpenStorage(url, storage_options));
  std::span<const std::byte> part(reinterpret_cast<const std::byte*>(text.data()), text.size());
  return location.storage->Write(JoinPath(location.path, "index.json"), {&part, 1});
}

DatasetWriter::DatasetWriter(std::string url, StorageOptions storage_options, std::string compression,
                             std::unique_ptr<ChunkWriter> writer)
    : url_(std::move(url)),
      storage_options_(std::move(storage_options)),
      compression_(std::move(compression)),
      writer_(std::move(writer)) {}
DatasetWriter::~DatasetWriter() = default;
DatasetWriter::DatasetWriter(DatasetWriter&&) noexcept = default;
DatasetWriter& DatasetWriter::operator=(DatasetWriter&&) noexcept = default;

Result<std::unique_ptr<DatasetWriter>> DatasetWriter::Create(const std::string& url, const WriterOptions& options,
                                                             const StorageOptions& storage_options) {
  std::vector<std::string> keep;
  for (const ChunkInfo& c : options.resume_chunks) keep.push_back(c.file);
  CHUTE_RETURN_NOT_OK(PrepareOutput(url, options.overwrite, keep, storage_options));
  CHUTE_ASSIGN_OR_RETURN(auto writer, ChunkWriter::Create(url, options, storage_options));
  return std::unique_ptr<DatasetWriter>(
      new DatasetWriter(url, storage_options, options.compression, std::move(writer)));
}

Status DatasetWriter::Add(std::span<const LeafInput> leaves) { return writer_->Add(leaves); }

Status DatasetWriter::Finish(const std::string& schema_json, const std::string& metadata_json) {
  // Checked before the last chunk is written: bad JSON leaves the writer usable.
  CHUTE_RETURN_NOT_OK(DumpIndex({}, schema_json, "", metadata_json).status());
  CHUTE_RETURN_NOT_OK(writer_->Close());
  return WriteIndex(url_, writer_->chunks(), schema_json, compression_, metadata_json, storage_options_);
}

}  // namespace chute
