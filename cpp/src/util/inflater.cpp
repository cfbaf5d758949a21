#include "util/inflater.h"

#include <arrow/util/compression.h>

#include <algorithm>

namespace chute {

Inflater::Inflater(Input input, std::string url) : input_(std::move(input)), url_(std::move(url)) {}
Inflater::~Inflater() = default;

Status Inflater::Inflate(std::vector<std::byte>* out, size_t want) {
  if (!inflater_) {
    auto codec = arrow::util::Codec::Create(arrow::Compression::GZIP);
    if (!codec.ok()) return Status::Unsupported(url_ + ": no gzip in this libarrow: " + codec.status().ToString());
    auto inflater = (*codec)->MakeDecompressor();
    if (!inflater.ok()) return Status::Unsupported(url_ + ": " + inflater.status().ToString());
    codec_ = std::move(*codec);
    inflater_ = std::move(*inflater);
  }
  const size_t goal = out->size() + want;
  while (out->size() < goal && !ended_) {
    if (piece_.empty()) {
      CHUTE_ASSIGN_OR_RETURN(piece_, input_());
      if (piece_.empty()) {
        if (!inflater_->IsFinished()) return Status::Corrupt(url_ + ": the gzip stream is truncated");
        ended_ = true;
        break;
      }
    }
    if (inflater_->IsFinished()) {  // another gzip member follows
      if (auto st = inflater_->Reset(); !st.ok()) return Status::Corrupt(url_ + ": " + st.ToString());
    }
    const size_t at = out->size();
    out->resize(std::min(goal, at + (size_t{1} << 20)));
    auto r = inflater_->Decompress(static_cast<int64_t>(piece_.size()), reinterpret_cast<const uint8_t*>(piece_.data()),
                                   static_cast<int64_t>(out->size() - at), reinterpret_cast<uint8_t*>(out->data() + at));
    if (!r.ok()) return Status::Corrupt(url_ + ": not a gzip stream, or a damaged one: " + r.status().ToString());
    if (r->bytes_read == 0 && r->bytes_written == 0)
      return Status::Corrupt(url_ + ": the gzip stream does not inflate (damaged)");
    out->resize(at + static_cast<size_t>(r->bytes_written));
    piece_ = piece_.subspan(static_cast<size_t>(r->bytes_read));
  }
  return Status::OK();
}

}  // namespace chute
