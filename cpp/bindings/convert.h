// Conversions shared by the binding files: items to Python leaves, dtype names, arrays
// that own their memory.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <cstddef>
#include <memory>
#include <string>

#include "chute/format.h"

namespace chute::bindings {

// Item -> list of Python leaves. Arrays are read-only views owned by one capsule that
// holds the item's owner (mapping or decompressed block). An item copied out whole (no
// array views) leaves no pages of its chunk mapped in this process. Needs the GIL.
nanobind::list ToPython(Item&& item);

// "int64" etc. -> an integer DType; ValueError for anything else.
DType ParseIntDType(const std::string& name);

// A NumPy array of `rows` x `cols` (or `cols` when !two_d) elements of `dtype` over
// `data`, which the array's owner keeps alive.
nanobind::ndarray<nanobind::numpy> OwnedArray(std::shared_ptr<std::byte> data, size_t rows, size_t cols,
                                              DType dtype, bool two_d = true);
// A new uninitialized 64-byte aligned buffer for OwnedArray.
std::shared_ptr<std::byte> NewBuffer(size_t bytes);

}  // namespace chute::bindings
