// OpenRegistryStore: picks the backend from the registry URI.
#include <string>
#include <string_view>

#include "registry/store.h"

namespace stratalake::registry {

arrow::Result<std::unique_ptr<RegistryStore>> OpenRegistryStore(const std::string& uri) {
  std::string_view u(uri);
  if (u.starts_with("postgresql://") || u.starts_with("postgres://")) {
    return OpenPostgresStore(uri);
  }
  // "sqlite://PATH" (so sqlite:///abs/path is absolute) and also "sqlite:PATH",
  // which is what SqliteStore::Describe() prints.
  std::string path = uri;
  if (u.starts_with("sqlite://")) {
    path = uri.substr(9);
  } else if (u.starts_with("sqlite:")) {
    path = uri.substr(7);
  } else if (auto scheme_end = u.find("://"); scheme_end != std::string_view::npos) {
    // Name only the scheme: the rest may hold credentials.
    return arrow::Status::Invalid("unsupported registry URI scheme '", u.substr(0, scheme_end),
                                  "': use a file path, sqlite://PATH or postgresql://...");
  }
  if (path.empty()) {
    return arrow::Status::Invalid("registry URI '", uri, "' names no SQLite file");
  }
  return OpenSqliteStore(path);
}

}  // namespace stratalake::registry
