#include "convert.h"

#include <cstdlib>
#include <new>
#include <vector>

namespace nb = nanobind;

namespace chute::bindings {

using OutArray = nb::ndarray<nb::numpy, nb::ro>;

nb::list ToPython(Item&& item) {
  nb::list out;
  nb::object owner;
  for (const LeafView& v : item.leaves) {
    switch (v.kind) {
      case LeafKind::kNull: out.append(nb::none()); break;
      case LeafKind::kBool: out.append(nb::bool_(v.as_bool())); break;
      case LeafKind::kInt: out.append(nb::int_(v.as_int())); break;
      case LeafKind::kFloat: out.append(nb::float_(v.as_float())); break;
      case LeafKind::kString: {
        PyObject* s = PyUnicode_DecodeUTF8(reinterpret_cast<const char*>(v.data),
                                           static_cast<Py_ssize_t>(v.size), "strict");
        if (!s) throw nb::python_error();
        out.append(nb::steal(s));
        break;
      }
      case LeafKind::kBytes:
        out.append(nb::bytes(reinterpret_cast<const char*>(v.data), v.size));
        break;
      case LeafKind::kArray: {
        if (!owner.is_valid()) {
          auto* keep = new std::shared_ptr<const void>(item.owner);
          owner = nb::capsule(keep, [](void* p) noexcept {
            delete static_cast<std::shared_ptr<const void>*>(p);
          });
        }
        std::vector<size_t> shape(v.shape.begin(), v.shape.end());
        OutArray arr(v.data, shape.size(), shape.data(), owner, nullptr,
                     nb::dlpack::dtype{v.dtype.code, v.dtype.bits, 1});
        out.append(nb::cast(arr, nb::rv_policy::reference));
        break;
      }
    }
  }
  if (!owner.is_valid()) ReleaseMapping(item);
  return out;
}

DType ParseIntDType(const std::string& name) {
  static const std::pair<const char*, DType> kNames[] = {
      {"int8", {DType::kInt, 8}},   {"int16", {DType::kInt, 16}},   {"int32", {DType::kInt, 32}},
      {"int64", {DType::kInt, 64}}, {"uint8", {DType::kUInt, 8}},   {"uint16", {DType::kUInt, 16}},
      {"uint32", {DType::kUInt, 32}}, {"uint64", {DType::kUInt, 64}}};
  for (auto& [n, d] : kNames)
    if (name == n) return d;
  throw nb::value_error(("token dtype must be an integer dtype name such as 'int64', not '" + name + "'").c_str());
}

std::shared_ptr<std::byte> NewBuffer(size_t bytes) {
  void* p = std::aligned_alloc(64, (std::max<size_t>(bytes, 1) + 63) / 64 * 64);
  if (!p) throw std::bad_alloc();
  return std::shared_ptr<std::byte>(static_cast<std::byte*>(p), [](std::byte* q) { std::free(q); });
}

nb::ndarray<nb::numpy> OwnedArray(std::shared_ptr<std::byte> data, size_t rows, size_t cols, DType dtype,
                                  bool two_d) {
  auto* keep = new std::shared_ptr<std::byte>(std::move(data));
  nb::capsule owner(keep, [](void* q) noexcept { delete static_cast<std::shared_ptr<std::byte>*>(q); });
  size_t shape[2] = {rows, cols};
  return nb::ndarray<nb::numpy>(keep->get(), two_d ? 2 : 1, two_d ? shape : shape + 1, owner, nullptr,
                                nb::dlpack::dtype{dtype.code, dtype.bits, 1});
}

}  // namespace chute::bindings
