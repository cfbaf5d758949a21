// Storage on top of an arrow::fs::FileSystem (S3, GCS, Azure): retries, error
// classification, and release of every client at shutdown.
#pragma once

#include <arrow/filesystem/filesystem.h>

#include <memory>
#include <string>

#include "options.h"

namespace chute::storage {

// Hints that turn an Arrow error into a message with the likely fix.
struct ErrorHints {
  std::string endpoint;     // what the client connects to, for "cannot connect" errors
  std::string credentials;  // how credentials are configured for this backend
};

std::shared_ptr<Storage> MakeArrowStorage(std::shared_ptr<arrow::fs::FileSystem> fs, std::string scheme,
                                          CommonOptions options, ErrorHints hints);

}  // namespace chute::storage
