// An ObjectWriter over an Arrow output stream (ArrowStorage::OpenWriter): for S3 a
// multipart upload (parts sent in the background while the caller writes), completed by
// Close() so that the object appears whole; Abort() cancels it. With `count_uploads` (S3),
// Write() hands Arrow at most 16 MiB at a time and then waits until the process's S3
// upload buffers fit in a budget (upload_pool.h), so memory stays bounded while parts keep
// flowing; a Flush() every GiB reports a failed part early instead of at Close(). (GCS
// streams upload as they are written.) When `target` differs from `path` (GCS, which
// finalizes even an aborted upload), Close() calls `copy` to put the object in place and
// then deletes the temporary; Abort() deletes it. Streams are not retried.
// Lifetime: the writer keeps `storage` alive. Thread-safety: one thread at a time.
#pragma once

#include <arrow/io/interfaces.h>

#include <functional>
#include <memory>
#include <string>

#include "chute/storage.h"

namespace chute::storage {

// Copies object `from` to `to` (retried by the storage).
using CopyIntoPlace = std::function<Status(const std::string& from, const std::string& to)>;

std::unique_ptr<ObjectWriter> MakeStreamWriter(std::shared_ptr<Storage> storage, std::string path, std::string target,
                                               std::shared_ptr<arrow::io::OutputStream> stream, bool count_uploads,
                                               CopyIntoPlace copy);

}  // namespace chute::storage
