// One item's bytes (docs/format.md, "Items"): written by the dataset writer, read by
// chute's chunk reader. Shared so that both sides agree on the layout by construction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "chute/format.h"
#include "chute/status.h"

namespace chute {

// Bytes item `leaves` occupies when it starts at stream position `start` (payload
// alignment depends on the position).
uint64_t EncodedItemSize(std::span<const LeafInput> leaves, uint64_t start);
// Writes item `leaves` at `out`, which lies at stream position `start` and has
// EncodedItemSize(leaves, start) zeroed bytes.
void EncodeItem(std::span<const LeafInput> leaves, uint64_t start, std::byte* out);
// Parses one item's bytes [base, base + size) into leaves that point into them, owned by
// `owner`. `where` names the item in errors (Corrupt).
Result<Item> DecodeItem(const std::byte* base, uint64_t size, std::shared_ptr<const void> owner,
                        const std::string& where);

}  // namespace chute
