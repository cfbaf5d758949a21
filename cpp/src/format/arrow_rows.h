// Rows of Arrow record batches as items (litdata's Arrow row chunks, Parquet row groups):
// one leaf per column, pointing into the batch's buffers (the item keeps the batch alive).
#pragma once

#include <arrow/record_batch.h>
#include <arrow/scalar.h>
#include <arrow/type.h>

#include <memory>
#include <string>
#include <vector>

#include "chute/format.h"
#include "chute/status.h"
#include "util/json.h"

namespace chute {

// Row `row` of `batch`, one leaf per entry of `columns` (column indices): binary/string
// -> bytes/str, integers -> int, floating point -> float, bool, null, lists of numbers
// -> 1-D arrays, and any other type (structs, maps, lists of others, dictionaries,
// timestamps, decimals...) -> its JSON text (ArrowJson; schema type "json"). `url` names
// the data in errors.
Result<Item> ArrowRowItem(const std::shared_ptr<arrow::RecordBatch>& batch, int64_t row, const std::vector<int>& columns,
                          const std::string& url);

// The schema entry (docs/format.md) of a column of `type`. `where` names the data in errors.
Result<json::Object> ArrowColumnSchema(const std::string& name, const arrow::DataType& type, const std::string& where);
// A value as JSON: structs -> objects, lists -> arrays, maps -> [[key, value], ...],
// dictionaries -> their value, strings, binaries -> Latin-1 text (byte b is code point b),
// numbers, bool, null; other types their text (Arrow's ToString: timestamps, decimals).
json::Value ArrowJson(const arrow::Scalar& value);

}  // namespace chute
