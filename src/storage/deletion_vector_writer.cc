#include "storage/deletion_vector_writer.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include <arrow/array.h>
#include <arrow/io/interfaces.h>

#include "storage/deletion_vector.h"
#include "storage/snapshot.h"

namespace stratalake::delta {
namespace {

DeletionVectorDescriptor Descriptor(const DeletionVector& dv) {
  return DeletionVectorDescriptor{dv.storage_type, dv.path_or_inline_dv, dv.offset,
                                  dv.size_in_bytes, dv.cardinality};
}

// The 16 bytes of an 8-4-4-4-12 hex UUID.
std::string UuidBytes(const std::string& text) {
  auto nibble = [](char c) {
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;  // NewUuid gives lowercase hex
  };
  std::string out;
  for (size_t i = 0; i + 1 < text.size(); ++i) {
    if (text[i] == '-') continue;
    out.push_back(static_cast<char>(nibble(text[i]) * 16 + nibble(text[i + 1])));
    ++i;
  }
  return out;
}

// Stats of a file with a deletion vector describe all its physical rows, so the
// min/max are no longer tight bounds of the live rows (PROTOCOL.md "Per-file
// Statistics": tightBounds).
std::string WideBoundsStats(const std::string& stats) {
  if (stats.empty() || stats.back() != '}') return stats;
  const std::string tight = "\"tightBounds\":true";
  if (auto pos = stats.find(tight); pos != std::string::npos) {
    std::string out = stats;
    out.replace(pos, tight.size(), "\"tightBounds\":false");
    return out;
  }
  if (stats.find("\"tightBounds\"") != std::string::npos) return stats;
  std::string out = stats.substr(0, stats.size() - 1);
  if (out.size() > 1) out += ',';
  return out + "\"tightBounds\":false}";
}

}  // namespace

bool WritesDeletionVectors(const Snapshot& snapshot) {
  if (snapshot.Property("delta.enableDeletionVectors", "false") != "true") return false;
  const auto& features = snapshot.protocol().writer_features;
  return features &&
         std::find(features->begin(), features->end(), "deletionVectors") != features->end();
}

DeletionVectorWriter::DeletionVectorWriter(const LogStore& store,
                                           std::shared_ptr<const Snapshot> snapshot)
    : store_(store), snapshot_(std::move(snapshot)) {}

arrow::Status DeletionVectorWriter::MarkDeleted(const AddFile& file,
                                                const arrow::ChunkedArray& deleted) {
  for (const auto& p : pending_) {
    if (p.file.path == file.path) {
      return arrow::Status::Invalid("data file '", file.path,
                                    "' was marked for a deletion vector twice in one commit");
    }
  }
  std::vector<uint64_t> old_rows;
  if (file.deletion_vector) {
    ARROW_ASSIGN_OR_RAISE(old_rows, LoadDeletionVector(Descriptor(*file.deletion_vector),
                                                       *store_.fs(), snapshot_->table_root()));
  }
  // Visible row i is the i-th physical row that the old deletion vector keeps.
  std::vector<uint64_t> new_rows;
  uint64_t physical = 0;
  size_t next_old = 0;
  for (const auto& chunk : deleted.chunks()) {
    const auto& mask = static_cast<const arrow::BooleanArray&>(*chunk);
    for (int64_t i = 0; i < mask.length(); ++i) {
      while (next_old < old_rows.size() && old_rows[next_old] == physical) {
        ++next_old;
        ++physical;
      }
      if (mask.IsValid(i) && mask.Value(i)) new_rows.push_back(physical);
      ++physical;
    }
  }
  if (new_rows.empty()) return arrow::Status::OK();
  if (file.deletion_vector) ++updated_;
  pending_.push_back({file, UnionRowIndexes(old_rows, new_rows)});
  return arrow::Status::OK();
}

arrow::Result<int64_t> DeletionVectorWriter::Finish(Transaction* txn) {
  if (pending_.empty()) return 0;
  std::vector<std::string> bitmaps;
  bitmaps.reserve(pending_.size());
  for (const auto& p : pending_) {
    ARROW_ASSIGN_OR_RAISE(auto bitmap, SerializeDeletionVectorBitmap(p.rows));
    bitmaps.push_back(std::move(bitmap));
  }
  ARROW_ASSIGN_OR_RAISE(auto content, BuildDeletionVectorFile(bitmaps));
  const std::string uuid = NewUuid();
  ARROW_ASSIGN_OR_RAISE(std::string encoded, EncodeDeletionVectorUuid(UuidBytes(uuid)));
  const std::string path = store_.root() + "/deletion_vector_" + uuid + ".bin";
  auto& fs = *store_.fs();
  auto write = [&]() -> arrow::Status {
    ARROW_ASSIGN_OR_RAISE(auto out, fs.OpenOutputStream(path));
    ARROW_RETURN_NOT_OK(out->Write(content.bytes.data(), content.bytes.size()));
    ARROW_RETURN_NOT_OK(out->Close());
    ARROW_RETURN_NOT_OK(store_.SyncFile(path));
    return store_.SyncDir(store_.root());
  };
  if (auto st = write(); !st.ok()) {
    (void)fs.DeleteFile(path);
    return st.WithMessage("writing deletion vector file '", path, "': ", st.message());
  }
  for (size_t i = 0; i < pending_.size(); ++i) {
    const auto& p = pending_[i];
    txn->Remove(p.file, true);
    AddFile add = p.file;
    add.data_change = true;
    add.stats = WideBoundsStats(p.file.stats);
    add.deletion_vector =
        DeletionVector{"u", encoded, content.offsets[i], static_cast<int32_t>(bitmaps[i].size()),
                       static_cast<int64_t>(p.rows.size())};
    txn->Add(std::move(add));
  }
  return static_cast<int64_t>(content.bytes.size());
}

}  // namespace stratalake::delta
