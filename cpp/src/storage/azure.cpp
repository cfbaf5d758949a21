// az:// and abfs:// through Arrow's AzureFileSystem: the account, container and
// credentials come from the URL and the environment as Arrow's AzureOptions::FromUri
// reads them (e.g. abfs://container@account.dfs.core.windows.net/path).
#include <arrow/filesystem/azurefs.h>

#include "storage/arrow_fs.h"

namespace chute::storage {
namespace {

Result<StorageLocation> MakeAzure(const std::string& url, const std::string&, const StorageOptions& options) {
  CHUTE_ASSIGN_OR_RETURN(CommonOptions common, ParseCommon("az", options, {"anonymous"}));
  CHUTE_ASSIGN_OR_RETURN(bool anonymous, ParseBool(options, "anonymous", false));
  std::string path;
  auto o = arrow::fs::AzureOptions::FromUri(url, &path);
  if (!o.ok()) return Status::Invalid(url + ": " + o.status().message());
  if (anonymous) {
    auto st = o->ConfigureAnonymousCredential();
    if (!st.ok()) return Status::Invalid(url + ": " + st.message());
  }
  auto fs = arrow::fs::AzureFileSystem::Make(*o);
  if (!fs.ok()) return Status::IOError(url + ": cannot create the Azure client: " + fs.status().ToString());
  ErrorHints hints{"", "AZURE_CLIENT_ID / AZURE_TENANT_ID / AZURE_CLIENT_SECRET, a managed identity, or a SAS "
                       "token in the URL"};
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return StorageLocation{MakeArrowStorage(*fs, "az", common, std::move(hints)), path};
}

const bool registered = (RegisterStorage("az", MakeAzure), RegisterStorage("abfs", MakeAzure),
                         RegisterStorage("abfss", MakeAzure), true);

}  // namespace
}  // namespace chute::storage
