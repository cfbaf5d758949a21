// gs:// through Arrow's GcsFileSystem (google-cloud-cpp inside the pyarrow wheel).
#include <arrow/filesystem/gcsfs.h>

#include <tuple>

#include "storage/arrow_fs.h"

namespace chute::storage {
namespace {

Result<StorageLocation> MakeGcs(const std::string& url, const std::string& path, const StorageOptions& options) {
  CHUTE_ASSIGN_OR_RETURN(CommonOptions common, ParseCommon("gs", options, {"endpoint_url", "anonymous", "project_id"}));
  std::string endpoint = Get(options, "endpoint_url", EnvOr("STORAGE_EMULATOR_HOST"));
  // An emulator takes no credentials unless asked otherwise.
  CHUTE_ASSIGN_OR_RETURN(bool anonymous, ParseBool(options, "anonymous", !endpoint.empty()));
  arrow::fs::GcsOptions o = anonymous ? arrow::fs::GcsOptions::Anonymous() : arrow::fs::GcsOptions::Defaults();
  if (!endpoint.empty()) {
    std::tie(o.scheme, endpoint) = SplitEndpoint(endpoint, "http");  // emulators speak plain HTTP
    o.endpoint_override = endpoint;
  }
  if (auto project = Get(options, "project_id"); !project.empty()) o.project_id = project;
  o.retry_limit_seconds = common.request_timeout;
  auto fs = arrow::fs::GcsFileSystem::Make(o);
  if (!fs.ok()) return Status::IOError(url + ": cannot create the GCS client: " + fs.status().ToString());
  ErrorHints hints{endpoint.empty() ? "" : o.scheme + "://" + endpoint,
                   "GOOGLE_APPLICATION_CREDENTIALS or `gcloud auth application-default login` "
                   "(anonymous=true for public buckets)"};
  return StorageLocation{MakeArrowStorage(*fs, "gs", common, std::move(hints)), path};
}

const bool registered = (RegisterStorage("gs", MakeGcs), RegisterStorage("gcs", MakeGcs), true);

}  // namespace
}  // namespace chute::storage
