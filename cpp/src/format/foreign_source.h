// What the sources of other libraries' datasets (litdata, MDS, WebDataset, Parquet) share:
// they hold their description (the index as read, or a scan), chunk list and schema, use
// no chute compression, and have no chute checksums to share check flags for.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "chute/source.h"

namespace chute {

class ForeignSource : public Source {
 public:
  ForeignSource(std::string format, std::string index_name, std::string description, std::vector<ChunkInfo> chunks,
                std::string schema)
      : format_(std::move(format)), index_name_(std::move(index_name)), description_(std::move(description)),
        chunks_(std::move(chunks)), schema_(std::move(schema)) {}

  const std::string& format() const override { return format_; }
  const std::string& index_name() const override { return index_name_; }
  const std::vector<ChunkInfo>& chunks() const override { return chunks_; }
  const std::string& schema_json() const override { return schema_; }
  const std::string& description() const override { return description_; }
  const std::string& compression() const override {
    static const std::string none;  // their own compression is undone when a chunk is opened
    return none;
  }
  uint64_t NumCheckFlags(uint32_t) const override { return 0; }

 private:
  std::string format_, index_name_, description_;
  std::vector<ChunkInfo> chunks_;
  std::string schema_;
};

}  // namespace chute
