#include "format/index_file.h"

#include "util/checksum.h"
#include "util/json.h"

namespace chute {

namespace {

Status BadIndex(const std::string& path, const std::string& what) {
  return Status::Corrupt(path + ": " + what + "; the index is damaged or not written by chute.optimize");
}

}  // namespace

Result<std::string> DumpIndex(const std::vector<ChunkInfo>& chunks, const std::string& schema_json,
                              const std::string& compression, const std::string& metadata_json) {
  CHUTE_ASSIGN_OR_RETURN(json::Value schema, json::Parse(schema_json));
  CHUTE_ASSIGN_OR_RETURN(json::Value metadata, json::Parse(metadata_json));
  if (!schema.object() || !metadata.object()) return Status::Invalid("schema and metadata must be JSON objects");
  json::Array entries;
  uint64_t num_items = 0;
  for (auto& c : chunks) {
    json::Object entry{{"file", c.file},
                       {"num_items", c.num_items},
                       {"num_bytes", c.num_bytes},
                       {"xxh3_64", ChecksumToHex(c.checksum)}};
    if (c.num_tokens >= 0) entry.emplace_back("num_tokens", c.num_tokens);
    entries.push_back(std::move(entry));
    num_items += c.num_items;
  }
  json::Value index = json::Object{
      {"format", "chute"},
      {"version", static_cast<int64_t>(kFormatVersion)},
      {"num_items", num_items},
      {"compression", compression.empty() ? json::Value() : json::Value(compression)},
      {"schema", std::move(schema)},
      {"chunks", std::move(entries)},
      {"metadata", std::move(metadata)},
  };
  return json::Dump(index, 1) + "\n";
}

Result<ChuteIndex> ParseIndex(const std::string& text, const std::string& path) {
  auto parsed = json::Parse(text);
  if (!parsed.ok()) return BadIndex(path, "not valid JSON (" + parsed.status().message() + ")");
  const json::Value& index = *parsed;
  auto* format = index.get("format");
  auto* version = index.get("version");
  if (!format || !format->string() || *format->string() != "chute" || !version || !version->integer())
    return BadIndex(path, "not a chute index (no \"format\": \"chute\" / \"version\")");
  if (*version->integer() > kFormatVersion)
    return Status::VersionMismatch(path + " is format version " + std::to_string(*version->integer()) +
                                   ", newer than this chute reads (" + std::to_string(kFormatVersion) +
                                   "); upgrade chute (pip install -U chute)");
  auto* chunks = index.get("chunks");
  auto* schema = index.get("schema");
  if (!chunks || !chunks->array() || !schema || !schema->object())
    return BadIndex(path, "missing \"chunks\" or \"schema\"");
  ChuteIndex out;
  out.schema_json = json::Dump(*schema);
  if (auto* c = index.get("compression"); c && c->string()) out.compression = *c->string();
  uint64_t total = 0;
  for (const json::Value& c : *chunks->array()) {
    auto* file = c.get("file");
    auto* n = c.get("num_items");
    auto* bytes = c.get("num_bytes");
    auto* sum = c.get("xxh3_64");
    ChunkInfo info;
    if (!file || !file->string() || !n || !n->integer() || *n->integer() < 0 || !bytes || !bytes->integer() ||
        !sum || !sum->string() || !ChecksumFromHex(*sum->string(), &info.checksum))
      return BadIndex(path, "malformed entry in \"chunks\"");
    info.file = *file->string();
    if (info.file.find('/') != std::string::npos || info.file.starts_with("."))
      return BadIndex(path, "chunk file name '" + info.file + "' is not a plain file name");
    info.num_items = static_cast<uint64_t>(*n->integer());
    if (auto* tokens = c.get("num_tokens"); tokens && tokens->integer()) info.num_tokens = *tokens->integer();
    info.num_bytes = static_cast<uint64_t>(*bytes->integer());
    total += info.num_items;
    out.chunks.push_back(std::move(info));
  }
  if (auto* n = index.get("num_items"); n && n->integer() && static_cast<uint64_t>(*n->integer()) != total)
    return BadIndex(path, "\"num_items\" does not match the chunk list");
  return out;
}

}  // namespace chute
