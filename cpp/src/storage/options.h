// Parsing storage options shared by the backends.
#pragma once

#include <set>
#include <string>
#include <utility>

#include "chute/storage.h"

namespace chute::storage {

struct CommonOptions {
  double timeout = 60;          // seconds per operation, retries included
  int max_attempts = 6;
  double connect_timeout = 10;  // seconds
  double request_timeout = 30;  // seconds
};

// Checks that every key of `options` is a common key or in `backend_keys`, and parses
// the common ones. `scheme` is for messages.
Result<CommonOptions> ParseCommon(const std::string& scheme, const StorageOptions& options,
                                  const std::set<std::string>& backend_keys);
Result<bool> ParseBool(const StorageOptions& options, const std::string& key, bool fallback);
std::string Get(const StorageOptions& options, const std::string& key, const std::string& fallback = "");
std::string EnvOr(const char* name, const std::string& fallback = "");
// "http://host:port/" -> {"http", "host:port"}; without a scheme, `default_scheme`.
std::pair<std::string, std::string> SplitEndpoint(std::string endpoint, const std::string& default_scheme);

}  // namespace chute::storage
