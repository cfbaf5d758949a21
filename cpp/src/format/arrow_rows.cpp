#include "format/arrow_rows.h"

#include <arrow/array.h>
#include <arrow/scalar.h>
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
  if (type.id() == arrow::Type::DICTIONARY)
    return ArrowColumnSchema(name, *static_cast<const arrow::DictionaryType&>(type).value_type(), where);
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
  (void)where;
  return json::Object{{"name", name}, {"type", "json"}};  // nested and other types: ArrowJson
}

json::Value ArrowJson(const arrow::Scalar& s) {
  if (!s.is_valid) return nullptr;
  switch (s.type->id()) {
    case arrow::Type::BOOL: return static_cast<const arrow::BooleanScalar&>(s).value;
    case arrow::Type::INT8: return int64_t{static_cast<const arrow::Int8Scalar&>(s).value};
    case arrow::Type::INT16: return int64_t{static_cast<const arrow::Int16Scalar&>(s).value};
    case arrow::Type::INT32: return int64_t{static_cast<const arrow::Int32Scalar&>(s).value};
    case arrow::Type::INT64: return static_cast<const arrow::Int64Scalar&>(s).value;
    case arrow::Type::UINT8: return int64_t{static_cast<const arrow::UInt8Scalar&>(s).value};
    case arrow::Type::UINT16: return int64_t{static_cast<const arrow::UInt16Scalar&>(s).value};
    case arrow::Type::UINT32: return int64_t{static_cast<const arrow::UInt32Scalar&>(s).value};
    case arrow::Type::UINT64: return static_cast<const arrow::UInt64Scalar&>(s).value;
    case arrow::Type::FLOAT: return double{static_cast<const arrow::FloatScalar&>(s).value};
    case arrow::Type::DOUBLE: return static_cast<const arrow::DoubleScalar&>(s).value;
    case arrow::Type::STRING:
    case arrow::Type::LARGE_STRING: return std::string(static_cast<const arrow::BaseBinaryScalar&>(s).view());
    case arrow::Type::BINARY:
    case arrow::Type::LARGE_BINARY:
    case arrow::Type::FIXED_SIZE_BINARY: {  // byte b -> code point b (Latin-1): valid text, nothing lost
      std::string text;
      for (unsigned char b : static_cast<const arrow::BaseBinaryScalar&>(s).view()) {
        if (b < 0x80) {
          text += static_cast<char>(b);
        } else {
          text += static_cast<char>(0xc0 | (b >> 6));
          text += static_cast<char>(0x80 | (b & 0x3f));
        }
      }
      return text;
    }
    case arrow::Type::LIST:
    case arrow::Type::LARGE_LIST:
    case arrow::Type::FIXED_SIZE_LIST:
    case arrow::Type::MAP: {  // a map: [[key, value], ...]
      const arrow::Array& values = *static_cast<const arrow::BaseListScalar&>(s).value;
      json::Array out;
      for (int64_t i = 0; i < values.length(); ++i) {
        auto v = values.GetScalar(i);
        out.push_back(v.ok() ? ArrowJson(**v) : json::Value());
      }
      if (s.type->id() == arrow::Type::MAP)
        for (json::Value& pair : out)
          if (auto* entry = pair.object()) pair = json::Array{(*entry)[0].second, (*entry)[1].second};
      return out;
    }
    case arrow::Type::STRUCT: {
      const auto& st = static_cast<const arrow::StructScalar&>(s);
      json::Object out;
      for (size_t f = 0; f < st.value.size(); ++f) out.emplace_back(s.type->field(static_cast<int>(f))->name(),
                                                                     ArrowJson(*st.value[f]));
      return out;
    }
    case arrow::Type::DICTIONARY: {
      auto v = static_cast<const arrow::DictionaryScalar&>(s).GetEncodedValue();
      return v.ok() ? ArrowJson(**v) : json::Value();
    }
    default: return s.ToString();  // timestamps, dates, decimals...: their text
  }
}

namespace {

// The leaf of `column`'s value at `row`; scalars and texts it needs are kept in `memory`
// (reserved: their addresses do not move). `name` and `url` are for errors.
Status ColumnLeaf(const arrow::Array& column, int64_t row, ItemMemory& memory, LeafView* leaf, const std::string& name,
                  const std::string& url) {
  if (column.IsNull(row)) return Status::OK();  // kNull
  auto scalar = [&](LeafKind kind, int64_t bits) {
    memory.scalars.push_back(bits);
    leaf->kind = kind;
    leaf->data = reinterpret_cast<const std::byte*>(&memory.scalars.back());
    leaf->size = 8;
  };
  DType dtype;
  const char* descr = nullptr;
  const arrow::Type::type id = column.type_id();
  if (id == arrow::Type::BINARY || id == arrow::Type::STRING) {
    auto view = static_cast<const arrow::BinaryArray&>(column).GetView(row);
    leaf->kind = id == arrow::Type::STRING ? LeafKind::kString : LeafKind::kBytes;
    leaf->data = reinterpret_cast<const std::byte*>(view.data());
    leaf->size = view.size();
  } else if (id == arrow::Type::LARGE_BINARY || id == arrow::Type::LARGE_STRING) {
    auto view = static_cast<const arrow::LargeBinaryArray&>(column).GetView(row);
    leaf->kind = id == arrow::Type::LARGE_STRING ? LeafKind::kString : LeafKind::kBytes;
    leaf->data = reinterpret_cast<const std::byte*>(view.data());
    leaf->size = view.size();
  } else if (id == arrow::Type::DICTIONARY) {  // the value it stands for
    const auto& d = static_cast<const arrow::DictionaryArray&>(column);
    return ColumnLeaf(*d.dictionary(), d.GetValueIndex(row), memory, leaf, name, url);
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
  } else if (IsList(id) && NumericType(column.type()->field(0)->type()->id(), &dtype, &descr)) {
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
    if (values.null_count() > 0)
      return Status::Unsupported(url + ": column '" + name + "' holds a list of numbers with nulls (read as arrays: "
                                 "no nulls)");
    leaf->kind = LeafKind::kArray;
    leaf->dtype = dtype;
    leaf->shape = {length};
    leaf->data = reinterpret_cast<const std::byte*>(values.values()->data()) + dtype.itemsize() * (values.offset() + begin);
    leaf->size = static_cast<size_t>(length) * dtype.itemsize();
  } else if (id != arrow::Type::NA) {  // nested and other types: JSON text, decoded in Python
    auto value = column.GetScalar(row);
    if (!value.ok()) return Status::Corrupt(url + ": column '" + name + "': " + value.status().ToString());
    memory.texts.push_back(json::Dump(ArrowJson(**value)));
    leaf->kind = LeafKind::kString;
    leaf->data = reinterpret_cast<const std::byte*>(memory.texts.back().data());
    leaf->size = memory.texts.back().size();
  }
  return Status::OK();
}

}  // namespace

Result<Item> ArrowRowItem(const std::shared_ptr<arrow::RecordBatch>& batch, int64_t row, const std::vector<int>& columns,
                          const std::string& url) {
  auto memory = std::make_shared<ItemMemory>();
  memory->bytes = batch;
  memory->scalars.reserve(columns.size());  // stable addresses for the leaves
  memory->texts.reserve(columns.size());
  Item item;
  item.leaves.resize(columns.size());
  for (size_t k = 0; k < columns.size(); ++k)
    CHUTE_RETURN_NOT_OK(ColumnLeaf(*batch->column(columns[k]), row, *memory, &item.leaves[k],
                                   batch->schema()->field(columns[k])->name(), url));
  item.owner = std::move(memory);
  return item;
}

}  // namespace chute
