// chute's index.json (docs/format.md, "index.json"): written by the dataset writer as the
// last file of a dataset, read once per process by chute's source. Both sides live here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "chute/format.h"
#include "chute/status.h"

namespace chute {

struct ChuteIndex {
  std::vector<ChunkInfo> chunks;
  std::string schema_json;   // the "schema" object, serialized
  std::string compression;   // "zstd:<level>" or ""
};

// The text of index.json for a finished dataset. `schema_json` and `metadata_json` are
// JSON objects (Invalid otherwise).
Result<std::string> DumpIndex(const std::vector<ChunkInfo>& chunks, const std::string& schema_json,
                              const std::string& compression, const std::string& metadata_json);
// Parses and validates the text of index.json; `path` names it in errors (Corrupt: not
// JSON, not a chute index, malformed chunk list; VersionMismatch: a newer format).
Result<ChuteIndex> ParseIndex(const std::string& text, const std::string& path);

}  // namespace chute
