// The actions of the Delta transaction log (PROTOCOL.md "Actions"), parsed from
// and serialized to the newline-delimited JSON of commit files.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <arrow/result.h>

#include "stratalake/delta.h"

namespace stratalake::delta {

struct Sidecar {
  std::string path;
  int64_t size_in_bytes = 0;
  int64_t modification_time = 0;
};

/// Everything one commit (or checkpoint file) holds, grouped by action type.
struct LogActions {
  std::optional<Protocol> protocol;
  std::optional<Metadata> metadata;
  std::vector<AddFile> adds;
  std::vector<RemoveFile> removes;
  std::vector<AppTransaction> txns;
  std::vector<DomainMetadata> domains;
  std::optional<CommitInfo> commit_info;
  std::vector<Sidecar> sidecars;
  bool has_checkpoint_metadata = false;
  /// commitInfo.inCommitTimestamp, when the table records in-commit timestamps.
  std::optional<int64_t> in_commit_timestamp;
};

/// Parse a commit (or JSON checkpoint) file. `file_name` is used in error messages,
/// which name the file, the line and what is wrong.
arrow::Result<LogActions> ParseLogJson(std::string_view content, const std::string& file_name);

/// Only the commitInfo of a commit file (for history): other actions are not
/// validated, so the history of a log with a malformed action still shows.
arrow::Result<std::optional<CommitInfo>> ParseCommitInfo(std::string_view content,
                                                         const std::string& file_name);

/// One JSON line (no trailing newline) per action.
std::string SerializeProtocol(const Protocol& protocol);
std::string SerializeMetadata(const Metadata& metadata);
std::string SerializeAdd(const AddFile& add);
std::string SerializeRemove(const RemoveFile& remove);
std::string SerializeTxn(const AppTransaction& txn);
std::string SerializeDomainMetadata(const DomainMetadata& domain);

/// The commitInfo action written with each commit.
struct CommitInfoToWrite {
  int64_t timestamp = 0;
  std::string operation;
  std::vector<std::pair<std::string, std::string>> parameters;  // values are JSON text
  std::map<std::string, int64_t> metrics;
  std::optional<std::string> user_metadata;
  std::optional<int64_t> read_version;
  std::optional<bool> is_blind_append;
  std::string isolation_level = "Serializable";
  std::string txn_id;
};
std::string SerializeCommitInfo(const CommitInfoToWrite& info);

/// JSON string literal of `s` (with quotes), for operation parameters.
std::string JsonQuote(std::string_view s);

}  // namespace stratalake::delta
