// s3:// through Arrow's S3FileSystem (libarrow_s3 from the pyarrow wheel).
#include <arrow/filesystem/s3fs.h>

#include <mutex>

#include <tuple>

#include "arrow_fs.h"

namespace chute::storage {
namespace {

Status EnsureS3() {
  static std::mutex mu;  // Arrow asks that initialization be serialized
  std::lock_guard lock(mu);
  auto st = arrow::fs::EnsureS3Initialized();
  if (!st.ok()) return Status::IOError("cannot initialize S3: " + st.ToString());
  return Status::OK();
}

Result<StorageLocation> MakeS3(const std::string& url, const std::string& path, const StorageOptions& options) {
  CHUTE_ASSIGN_OR_RETURN(CommonOptions common,
                         ParseCommon("s3", options, {"endpoint_url", "region", "access_key_id", "secret_access_key",
                                                     "session_token", "anonymous"}));
  CHUTE_RETURN_NOT_OK(EnsureS3());
  CHUTE_ASSIGN_OR_RETURN(bool anonymous, ParseBool(options, "anonymous", false));
  std::string key = Get(options, "access_key_id"), secret = Get(options, "secret_access_key");
  if (key.empty() != secret.empty())
    return Status::Invalid(url + ": give both access_key_id and secret_access_key in storage_options");

  arrow::fs::S3Options o = anonymous ? arrow::fs::S3Options::Anonymous()
                           : !key.empty() ? arrow::fs::S3Options::FromAccessKey(key, secret, Get(options, "session_token"))
                                          : arrow::fs::S3Options::Defaults();  // env, config files, profile, IMDS, web identity
  std::string region = Get(options, "region", EnvOr("AWS_REGION", EnvOr("AWS_DEFAULT_REGION")));
  if (!region.empty()) o.region = region;
  std::string endpoint = Get(options, "endpoint_url", EnvOr("AWS_ENDPOINT_URL_S3", EnvOr("AWS_ENDPOINT_URL")));
  if (!endpoint.empty()) {
    std::tie(o.scheme, endpoint) = SplitEndpoint(endpoint, o.scheme);
    o.endpoint_override = endpoint;
  }
  o.connect_timeout = common.connect_timeout;
  o.request_timeout = common.request_timeout;
  // chute retries itself (bounded by `timeout`); one SDK attempt per chute attempt.
  o.retry_strategy = arrow::fs::S3RetryStrategy::GetAwsStandardRetryStrategy(1);
  auto fs = arrow::fs::S3FileSystem::Make(o);
  if (!fs.ok()) return Status::IOError(url + ": cannot create the S3 client: " + fs.status().ToString());
  ErrorHints hints{endpoint.empty() ? "" : o.scheme + "://" + endpoint,
                   "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_PROFILE, an instance role, or storage_options "
                   "access_key_id / secret_access_key (anonymous=true for public buckets)"};
  return StorageLocation{MakeArrowStorage(*fs, "s3", common, std::move(hints)), path};
}

const bool registered = (RegisterStorage("s3", MakeS3), true);

}  // namespace
}  // namespace chute::storage
