// s3:// through Arrow's S3FileSystem (libarrow_s3 from the pyarrow wheel).
#include <arrow/filesystem/s3fs.h>

#include <memory>
#include <mutex>
#include <tuple>

#include "storage/arrow_fs.h"
#include "storage/s3_http.h"
#include "storage/upload_pool.h"

namespace chute::storage {
namespace {

Status EnsureS3() {
  static std::mutex mu;  // Arrow asks that initialization be serialized
  std::lock_guard lock(mu);
  auto st = arrow::fs::EnsureS3Initialized();
  if (!st.ok()) return Status::IOError("cannot initialize S3: " + st.ToString());
  return Status::OK();
}

// Reads through S3HttpReader (s3_http.h) when the endpoint is plain http and the
// credentials are anonymous or static (given, or in AWS_ACCESS_KEY_ID /
// AWS_SECRET_ACCESS_KEY, which the AWS SDK's chain would pick first too); otherwise none
// (Arrow reads).
std::shared_ptr<ObjectReader> PlainHttpReader(const arrow::fs::S3Options& o, bool anonymous,
                                              const StorageOptions& options, const CommonOptions& common) {
  if (o.scheme != "http" || o.endpoint_override.empty()) return nullptr;
  S3HttpConfig config{o.endpoint_override, o.region.empty() ? "us-east-1" : o.region, {}, common.connect_timeout,
                      common.request_timeout};
  if (!anonymous) {
    config.credentials.access_key = Get(options, "access_key_id", EnvOr("AWS_ACCESS_KEY_ID"));
    config.credentials.secret_key = Get(options, "secret_access_key", EnvOr("AWS_SECRET_ACCESS_KEY"));
    config.credentials.session_token =
        Get(options, "access_key_id").empty() ? EnvOr("AWS_SESSION_TOKEN") : Get(options, "session_token");
    if (config.credentials.access_key.empty() || config.credentials.secret_key.empty()) return nullptr;
  }
  return std::make_shared<S3HttpReader>(std::move(config));
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
  auto fs = arrow::fs::S3FileSystem::Make(o, arrow::io::IOContext(&S3UploadPool::Get()));  // counts upload parts
  if (!fs.ok()) return Status::IOError(url + ": cannot create the S3 client: " + fs.status().ToString());
  ErrorHints hints{endpoint.empty() ? "" : o.scheme + "://" + endpoint,
                   "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_PROFILE, an instance role, or storage_options "
                   "access_key_id / secret_access_key (anonymous=true for public buckets)"};
  auto reader = PlainHttpReader(o, anonymous, options, common);
  return StorageLocation{MakeArrowStorage(*fs, "s3", common, std::move(hints), std::move(reader)), path};
}

const bool registered = (RegisterStorage("s3", MakeS3), true);

}  // namespace
}  // namespace chute::storage
