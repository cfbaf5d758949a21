#include "util/codec.h"

#include <arrow/util/compression.h>

namespace chute {

Result<CompressionSpec> CompressionSpec::Parse(const std::string& spec) {
  CompressionSpec out;
  if (spec.empty() || spec == "none") return out;
  std::string name = spec, level;
  if (auto colon = spec.find(':'); colon != std::string::npos) {
    name = spec.substr(0, colon);
    level = spec.substr(colon + 1);
  }
  if (name != "zstd")
    return Status::Invalid("unknown compression '" + spec + "': use None, 'zstd' or 'zstd:LEVEL'");
  out.codec = CodecId::kZstd;
  if (!level.empty()) {
    try {
      size_t used = 0;
      out.level = std::stoi(level, &used);
      if (used != level.size()) throw std::invalid_argument(level);
    } catch (const std::exception&) {
      return Status::Invalid("bad zstd level in '" + spec + "': use 'zstd:LEVEL' with LEVEL 1..22");
    }
    if (out.level < 1 || out.level > 22)
      return Status::Invalid("zstd level in '" + spec + "' must be 1..22");
  }
  return out;
}

std::string CompressionSpec::ToString() const {
  return codec == CodecId::kNone ? "" : "zstd:" + std::to_string(level);
}

namespace {

class ArrowCodec final : public Codec {
 public:
  ArrowCodec(std::unique_ptr<arrow::util::Codec> codec, std::string name)
      : codec_(std::move(codec)), name_(std::move(name)) {}

  Status Compress(const std::byte* src, size_t size, std::vector<std::byte>* out) override {
    auto in = reinterpret_cast<const uint8_t*>(src);
    int64_t bound = codec_->MaxCompressedLen(static_cast<int64_t>(size), in);
    out->resize(static_cast<size_t>(bound));
    auto n = codec_->Compress(static_cast<int64_t>(size), in, bound,
                              reinterpret_cast<uint8_t*>(out->data()));
    if (!n.ok()) return Status::IOError(name_ + " compression failed: " + n.status().ToString());
    out->resize(static_cast<size_t>(*n));
    return Status::OK();
  }

  Status Decompress(const std::byte* src, size_t size, std::byte* dst, size_t dst_size) override {
    auto n = codec_->Decompress(static_cast<int64_t>(size), reinterpret_cast<const uint8_t*>(src),
                                static_cast<int64_t>(dst_size), reinterpret_cast<uint8_t*>(dst));
    if (!n.ok()) return Status::Corrupt(name_ + " data does not decompress: " + n.status().ToString());
    if (static_cast<size_t>(*n) != dst_size)
      return Status::Corrupt(name_ + " data decompressed to " + std::to_string(*n) +
                             " bytes, expected " + std::to_string(dst_size));
    return Status::OK();
  }

 private:
  std::unique_ptr<arrow::util::Codec> codec_;
  std::string name_;
};

}  // namespace

Result<std::shared_ptr<Codec>> Codec::Make(const CompressionSpec& spec) {
  if (spec.codec == CodecId::kNone) return Status::Invalid("no codec for uncompressed data");
  auto codec = arrow::util::Codec::Create(arrow::Compression::ZSTD, spec.level);
  if (!codec.ok())
    return Status::Unsupported("zstd is not available in this libarrow: " + codec.status().ToString());
  return std::shared_ptr<Codec>(std::make_shared<ArrowCodec>(std::move(*codec), "zstd"));
}

Result<std::shared_ptr<Codec>> Codec::ForFamily(const std::string& family) {
  static const std::pair<const char*, arrow::Compression::type> kFamilies[] = {
      {"zstd", arrow::Compression::ZSTD}, {"gz", arrow::Compression::GZIP}, {"bz2", arrow::Compression::BZ2},
      {"br", arrow::Compression::BROTLI}, {"snappy", arrow::Compression::SNAPPY}};
  for (const auto& [name, type] : kFamilies) {
    if (family != name) continue;
    auto codec = arrow::util::Codec::Create(type);
    if (!codec.ok())
      return Status::Unsupported(family + " is not available in this libarrow: " + codec.status().ToString());
    return std::shared_ptr<Codec>(std::make_shared<ArrowCodec>(std::move(*codec), family));
  }
  return Status::Unsupported("unknown compression '" + family + "' (known: zstd, gz, bz2, br, snappy)");
}

}  // namespace chute
