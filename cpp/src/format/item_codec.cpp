#include "format/item_codec.h"

#include <cstring>

#include "format/chunk_layout.h"
#include "util/checksum.h"

namespace chute {

bool LeafView::as_bool() const { return as_int() != 0; }
int64_t LeafView::as_int() const {
  int64_t v = 0;
  if (size == sizeof v) std::memcpy(&v, data, sizeof v);
  return v;
}
double LeafView::as_float() const {
  double v = 0;
  if (size == sizeof v) std::memcpy(&v, data, sizeof v);
  return v;
}

namespace {

size_t PayloadAlignment(LeafKind kind) {
  switch (kind) {
    case LeafKind::kArray: return kArrayAlignment;
    case LeafKind::kBool:
    case LeafKind::kInt:
    case LeafKind::kFloat: return 8;
    default: return 1;
  }
}

}  // namespace

uint64_t EncodedItemSize(std::span<const LeafInput> leaves, uint64_t start) {
  uint64_t pos = start + sizeof(ItemHeader) + leaves.size() * sizeof(LeafEntry);
  for (auto& leaf : leaves) pos += leaf.shape.size() * sizeof(int64_t);
  for (auto& leaf : leaves) pos = AlignUp(pos, PayloadAlignment(leaf.kind)) + leaf.size;
  return pos - start;
}

void EncodeItem(std::span<const LeafInput> leaves, uint64_t start, std::byte* out) {
  ItemHeader ih{static_cast<uint32_t>(leaves.size()), 0};
  std::memcpy(out, &ih, sizeof ih);
  uint64_t pos = start + sizeof ih + leaves.size() * sizeof(LeafEntry);  // stream position
  std::byte* shapes = out + (pos - start);
  for (auto& leaf : leaves) pos += leaf.shape.size() * sizeof(int64_t);
  for (size_t k = 0; k < leaves.size(); ++k) {
    const LeafInput& leaf = leaves[k];
    pos = AlignUp(pos, PayloadAlignment(leaf.kind));
    LeafEntry e{static_cast<uint8_t>(leaf.kind), leaf.dtype.code, leaf.dtype.bits,
                static_cast<uint8_t>(leaf.shape.size()), 0, pos - start, leaf.size};
    if (leaf.kind != LeafKind::kArray) e.dtype_code = e.dtype_bits = 0;
    std::memcpy(out + sizeof ih + k * sizeof e, &e, sizeof e);
    std::memcpy(shapes, leaf.shape.data(), leaf.shape.size() * sizeof(int64_t));
    shapes += leaf.shape.size() * sizeof(int64_t);
    if (leaf.size) std::memcpy(out + (pos - start), leaf.data, leaf.size);
    pos += leaf.size;
  }
}

Result<Item> DecodeItem(const std::byte* base, uint64_t size, std::shared_ptr<const void> owner,
                        const std::string& where) {
  auto corrupt = [&](const char* what) {
    return Status::Corrupt(where + ": malformed item (" + what + ")" + kRewriteHint);
  };
  if (size < sizeof(ItemHeader)) return corrupt("too short");
  ItemHeader ih;
  std::memcpy(&ih, base, sizeof ih);
  uint64_t table_end = sizeof ih + uint64_t{ih.num_leaves} * sizeof(LeafEntry);
  if (table_end > size) return corrupt("leaf table");
  Item item;
  item.leaves.resize(ih.num_leaves);
  uint64_t shape_pos = table_end;
  for (uint32_t k = 0; k < ih.num_leaves; ++k) {
    LeafEntry e;
    std::memcpy(&e, base + sizeof ih + k * sizeof e, sizeof e);
    if (e.kind > static_cast<uint8_t>(LeafKind::kArray)) return corrupt("leaf kind");
    if (e.offset > size || e.size > size - e.offset) return corrupt("leaf bounds");
    if (shape_pos + e.ndim * sizeof(int64_t) > size) return corrupt("shape");
    LeafView& v = item.leaves[k];
    v.kind = static_cast<LeafKind>(e.kind);
    v.dtype = DType{e.dtype_code, e.dtype_bits};
    v.shape.resize(e.ndim);
    std::memcpy(v.shape.data(), base + shape_pos, e.ndim * sizeof(int64_t));
    shape_pos += e.ndim * sizeof(int64_t);
    v.data = base + e.offset;
    v.size = e.size;
    bool scalar = v.kind == LeafKind::kBool || v.kind == LeafKind::kInt || v.kind == LeafKind::kFloat;
    if (scalar && v.size != 8) return corrupt("scalar size");
    if (v.kind == LeafKind::kArray) {
      uint64_t n = v.dtype.itemsize();
      for (int64_t d : v.shape) {
        if (d < 0) return corrupt("negative dimension");
        n *= static_cast<uint64_t>(d);
      }
      if (n != v.size) return corrupt("array size does not match its shape");
    }
  }
  item.owner = std::move(owner);
  return item;
}

}  // namespace chute
