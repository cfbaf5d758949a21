#include "format/arrow_rows.h"

#include <arrow/array.h>
#include <arrow/util/float16.h>

#include <cstring>

#include "util/bytes.h"

namespace chute {

namespace {

// A numeric Arrow type as a chute dtype and numpy descr; false for others.
bool NumericType(arrow::Type::type id, DType* dtype, const char** descr) {
  switch (id) {
    case arrow::Type::INT8: *dtype = {DType::kInt, 8}, *descr = "|i1"; return true;
    case arrow::Type::INT16: *dtype = {DType::kInt, 16}, *descr = "<i2"; return true;
    case arrow::Type::INT32: *dtype = {DType::kInt, 32}, *descr = "<i4"; return true;
    case arrow::Type::INT64: *dtype = {DType::kInt, 64}, *descr = "<i8"; return true;
    case arrow::Type::UINT8: *dtype = {DType::kUInt, 8}, *descr = "|u1"; return true;
    case arrow::Type::UINT16: *dtype = {DType::kUInt, 16}, *descr = "<u2"; return true;
    case arrow::Type::UINT32: *dtype = {DType::kUInt, 32}, *descr = "<u4"; return true;
    case arrow::Type::UINT64: *dtype = {DType::kUInt, 64}, *descr = "<u8"; return true;
    case arrow::Type::HALF_FLOAT: *dtype = {DType::kFloat, 16}, *descr = "<f2"; return true;
    case arrow::Type::FLOAT: *dtype = {DType::kFloat, 32}, *descr = "<f4"; return true;
    case arrow::Type::DOUBLE: *dtype = {DType::kFloat, 64}, *descr = "<f8"; return true;
    default: return false;
  }
}

bool IsList(arrow::Type::type id) {
  return id == arrow::Type::LIST || id == arrow::Type::LARGE_LIST || id == arrow::Type::FIXED_SIZE_LIST;
}

}  // namespace

Result<json::Object> ArrowColumnSchema(const std::string& name, const arrow::DataType& type, const std::string& where) {
  DType dtype;
  const char* descr = nullptr;
  switch (type.id()) {
    case arrow::Type::BINARY:
    case arrow::Type::LARGE_BINARY: return json::Object{{"name", name}, {"type", "bytes"}};
    case arrow::Type::STRING:
    case arrow::Type::LARGE_STRING: return json::Object{{"name", name}, {"type", "str"}};
    case arrow::Type::BOOL: return json::Object{{"name", name}, {"type", "bool"}};
    case arrow::Type::NA: return json::Object{{"name", name}, {"type", "none"}};
    default: break;
  }
  if (NumericType(type.id(), &dtype, &descr))
    return json::Object{{"name", name}, {"type", dtype.code == DType::kFloat ? "float" : "int"}};
  if (IsList(type.id()) && type.num_fields() == 1 && NumericType(type.field(0)->type()->id(), &dtype, &descr))
    return json::Object{{"name", name}, {"type", "numpy"}, {"dtype", descr}};
  return Status::Unsupported(where + ": column '" + name + "' has type " + type.ToString() +
                             ", which chute does not read yet (binary, string, numbers, bool, null and lists of "
                             "numbers are read)");
}

Result<Item> ArrowRowItem(const std::shared_ptr<arrow::RecordBatch>& batch, int64_t row, const std::vector<int>& columns,
                          const std::string& url) {
  auto memory = std::make_shared<ItemMemory>();
  memory->bytes = batch;
  memory->scalars.reserve(columns.size());  // stable addresses for the leaves
  Item item;
  item.leaves.reserve(columns.size());
  for (int c : columns) {
    const arrow::Array& column = *batch->column(c);
    LeafView leaf;
    if (column.IsNull(row)) {
      item.leaves.push_back(leaf);  // kNull
      continue;
    }
    auto scalar = [&](LeafKind kind, int64_t bits) {
      memory->scalars.push_back(bits);
      leaf.kind = kind;
      leaf.data = reinterpret_cast<const std::byte*>(&memory->scalars.back());
      leaf.size = 8;
    };
    DType dtype;
    const char* descr = nullptr;
    const arrow::Type::type id = column.type_id();
    if (id == arrow::Type::BINARY || id == arrow::Type::STRING) {
      auto view = static_cast<const arrow::BinaryArray&>(column).GetView(row);
      leaf.kind = id == arrow::Type::STRING ? LeafKind::kString : LeafKind::kBytes;
      leaf.data = reinterpret_cast<const std::byte*>(view.data());
      leaf.size = view.size();
    } else if (id == arrow::Type::LARGE_BINARY || id == arrow::Type::LARGE_STRING) {
      auto view = static_cast<const arrow::LargeBinaryArray&>(column).GetView(row);
      leaf.kind = id == arrow::Type::LARGE_STRING ? LeafKind::kString : LeafKind::kBytes;
      leaf.data = reinterpret_cast<const std::byte*>(view.data());
      leaf.size = view.size();
    } else if (id == arrow::Type::BOOL) {
      scalar(LeafKind::kBool, static_cast<const arrow::BooleanArray&>(column).Value(row));
    } else if (NumericType(id, &dtype, &descr)) {
      auto& a = static_cast<const arrow::PrimitiveArray&>(column);
      const std::byte* p = reinterpret_cast<const std::byte*>(a.values()->data()) + dtype.itemsize() * (a.offset() + row);
      int64_t bits = 0;
      if (dtype.code == DType::kFloat) {
        double v = dtype.bits == 64 ? static_cast<const arrow::DoubleArray&>(column).Value(row)
                   : dtype.bits == 32 ? static_cast<const arrow::FloatArray&>(column).Value(row)
                                      : arrow::util::Float16::FromBits(
                                            static_cast<const arrow::HalfFloatArray&>(column).Value(row)).ToDouble();
        std::memcpy(&bits, &v, sizeof v);
        scalar(LeafKind::kFloat, bits);
      } else {
        uint64_t u = 0;
        std::memcpy(&u, p, dtype.itemsize());
        if (dtype.code == DType::kInt && dtype.bits < 64 && (u >> (dtype.bits - 1)) & 1) u |= ~uint64_t{0} << dtype.bits;
        std::memcpy(&bits, &u, sizeof u);
        scalar(LeafKind::kInt, bits);  // uint64 past int64's range wraps, as numpy's int64 cast does
      }
    } else if (IsList(id)) {
      int64_t begin = 0, length = 0;
      std::shared_ptr<arrow::Array> list_values;
      if (id == arrow::Type::LIST) {
        auto& a = static_cast<const arrow::ListArray&>(column);
        begin = a.value_offset(row), length = a.value_length(row), list_values = a.values();
      } else if (id == arrow::Type::LARGE_LIST) {
        auto& a = static_cast<const arrow::LargeListArray&>(column);
        begin = a.value_offset(row), length = a.value_length(row), list_values = a.values();
      } else {
        auto& a = static_cast<const arrow::FixedSizeListArray&>(column);
        begin = a.value_offset(row), length = a.value_length(row), list_values = a.values();
      }
      const auto& values = static_cast<const arrow::PrimitiveArray&>(*list_values);
      if (!NumericType(values.type_id(), &dtype, &descr) || values.null_count() > 0)
        return Status::Unsupported(url + ": column '" + batch->schema()->field(c)->name() +
                                   "' holds a list that is not of non-null numbers");
      leaf.kind = LeafKind::kArray;
      leaf.dtype = dtype;
      leaf.shape = {length};
      leaf.data = reinterpret_cast<const std::byte*>(values.values()->data()) + dtype.itemsize() * (values.offset() + begin);
      leaf.size = static_cast<size_t>(length) * dtype.itemsize();
    } else if (id != arrow::Type::NA) {
      return Status::Unsupported(url + ": column '" + batch->schema()->field(c)->name() + "' has Arrow type " +
                                 column.type()->ToString() + ", which chute does not read yet");
    }
    item.leaves.push_back(std::move(leaf));
  }
  item.owner = std::move(memory);
  return item;
}

}  // namespace chute
