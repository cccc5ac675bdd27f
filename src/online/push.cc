// Push: rows for a push source, written online (every online view on the
// source) and/or appended to the source's Delta table.
#include <arrow/api.h>

#include "common/errors.h"
#include "ingest/convert.h"
#include "online/codec.h"
#include "stratalake/delta.h"
#include "stratalake/online.h"
#include "stratalake/repo.h"
#include "stratalake/status.h"

namespace stratalake::online {

namespace {

std::string MappedName(const registry::Source& s, const std::string& stored) {
  auto it = s.field_mapping.find(stored);
  return it == s.field_mapping.end() ? stored : it->second;
}

}  // namespace

arrow::Result<PushTarget> ParsePushTarget(const std::string& text) {
  if (text == "online") return PushTarget::kOnline;
  if (text == "offline") return PushTarget::kOffline;
  if (text == "online_and_offline") return PushTarget::kOnlineAndOffline;
  return UserError(
      ErrorKind::kDefinitionError,
      "unknown push target '" + text + "' (use \"online\", \"offline\" or \"online_and_offline\")");
}

arrow::Result<PushResult> Push(const repo::FeatureRepository& repo,
                               const registry::RegistryState& state, OnlineStore* store,
                               const std::string& push_source,
                               const std::shared_ptr<arrow::Table>& data, PushTarget to) {
  const registry::Definitions& defs = state.defs;
  const registry::Source* src = defs.FindSource(push_source);
  if (!src) {
    std::string names;
    for (const auto& s : defs.sources) {
      if (s.type == registry::SourceType::kPush) names += (names.empty() ? "" : ", ") + s.name;
    }
    return UserError(ErrorKind::kObjectNotFound,
                     "unknown push source '" + push_source + "' (push sources: " + names + ")");
  }
  if (src->type != registry::SourceType::kPush) {
    return UserError(ErrorKind::kDefinitionError,
                     "source '" + push_source + "' is a " + registry::SourceTypeName(src->type) +
                         " source; only push sources accept pushes (use `stratalake ingest`)");
  }
  // Convert to the declared schema, all or nothing.
  ARROW_ASSIGN_OR_RAISE(auto target, repo.IngestTargetFor(*src));
  const auto& schema = *target.schema;
  for (const auto& name : data->schema()->field_names()) {
    if (schema.GetFieldIndex(name) < 0) {
      return UserError(
          ErrorKind::kSchemaMismatch, "push source '" + push_source + "' has no column '" + name +
                                          "' (columns: " +
                                          [&] {
                                            std::string s;
                                            for (const auto& f : schema.field_names())
                                              s += (s.empty() ? "" : ", ") + f;
                                            return s;
                                          }() +
                                          ")");
    }
  }
  arrow::ArrayVector columns;
  arrow::FieldVector mapped_fields;
  int64_t n = data->num_rows();
  for (const auto& field : schema.fields()) {
    auto col = data->GetColumnByName(field->name());
    std::shared_ptr<arrow::Array> out;
    if (!col) {
      if (!field->nullable()) {
        return UserError(ErrorKind::kDataRejected, "push to '" + push_source + "' lacks column '" +
                                                       field->name() + "', which is NOT NULL");
      }
      ARROW_ASSIGN_OR_RAISE(out, arrow::MakeArrayOfNull(field->type(), n));
    } else {
      std::shared_ptr<arrow::Array> in;
      if (col->num_chunks() == 1) {
        in = col->chunk(0);
      } else {
        ARROW_ASSIGN_OR_RAISE(in, arrow::Concatenate(col->chunks()));
      }
      ARROW_ASSIGN_OR_RAISE(auto conv, ingest::ConvertColumn(in, field->type()));
      if (!conv.errors.empty()) {
        const auto& e = conv.errors.front();
        return UserError(ErrorKind::kDataRejected,
                         "push to '" + push_source + "': column '" + field->name() + "', row " +
                             std::to_string(e.row) + ": value " + ingest::Abbreviate(e.value) +
                             " is " + e.reason + " (" + std::to_string(conv.errors.size()) +
                             " bad value(s); nothing was written)");
      }
      out = conv.values;
      if (!field->nullable() && out->null_count() > 0) {
        return UserError(ErrorKind::kDataRejected, "push to '" + push_source + "': column '" +
                                                       field->name() +
                                                       "' is NOT NULL but has null values");
      }
    }
    columns.push_back(out);
    mapped_fields.push_back(field);
  }
  auto typed = arrow::Table::Make(arrow::schema(mapped_fields), columns, n);

  PushResult result;
  result.rows = n;
  // Offline first: when the commit fails, nothing is visible online either.
  if (to != PushTarget::kOnline) {
    ARROW_ASSIGN_OR_RAISE(auto table, delta::DeltaTable::ForPath(target.table_uri));
    delta::WriteOptions wo;
    wo.partition_by = target.partition_by;
    ARROW_ASSIGN_OR_RAISE(auto commit, table->Write(typed, wo));
    result.delta_version = commit.version;
  }
  if (to != PushTarget::kOffline) {
    if (!store) return arrow::Status::Invalid("push online: no online store");
    std::string ts_col =
        src->timestamp_field.empty() ? repo.config().default_timestamp_field : src->timestamp_field;
    std::vector<KeyValue> writes;
    for (const auto& v : defs.feature_views) {
      if (v.source != src->name || !v.online) continue;
      Layout layout = MakeLayout(v);
      // Columns in EncodeViewRows' order, by the names views use (field_mapping).
      auto find = [&](const std::string& mapped) -> std::shared_ptr<arrow::ChunkedArray> {
        for (int i = 0; i < typed->num_columns(); ++i) {
          if (MappedName(*src, typed->field(i)->name()) == mapped) return typed->column(i);
        }
        return nullptr;
      };
      std::vector<std::string> wanted;
      size_t num_keys = 0;
      for (const auto& en : v.entities) {
        const auto* e = defs.FindEntity(en);
        if (!e) return UserError(ErrorKind::kObjectNotFound, "unknown entity '" + en + "'");
        for (const auto& k : e->join_keys) {
          wanted.push_back(k.name);
          ++num_keys;
        }
      }
      wanted.push_back(ts_col);
      bool has_created = !src->created_timestamp_field.empty();
      if (has_created) wanted.push_back(src->created_timestamp_field);
      for (const auto& f : layout.names) wanted.push_back(f);
      arrow::ChunkedArrayVector cols;
      arrow::FieldVector fields;
      for (const auto& w : wanted) {
        auto c = find(w);
        if (!c) {
          return UserError(ErrorKind::kSchemaMismatch,
                           "push source '" + push_source + "' has no column '" + w +
                               "' needed by feature view '" + v.name + "'");
        }
        cols.push_back(c);
        fields.push_back(arrow::field(w, c->type()));
      }
      auto view_data = arrow::Table::Make(arrow::schema(fields), cols, n);
      std::string layout_value;
      AppendVersionPrefix(0, std::nullopt, &layout_value);
      layout_value += SerializeLayout(layout);
      writes.push_back({LayoutKey(v.name, layout.fingerprint), layout_value});
      size_t count = writes.size();
      ARROW_RETURN_NOT_OK(EncodeViewRows(v, *src, layout, num_keys, has_created, *view_data,
                                         INT64_MIN, INT64_MAX, &writes, &count));
      writes.resize(count);
      ++result.views_written;
    }
    ARROW_RETURN_NOT_OK(store->Write(writes, WriteOptions{}));
  }
  return result;
}

arrow::Result<int64_t> WriteOnlineRows(const registry::RegistryState& state, OnlineStore& store,
                                       const std::string& feature_view,
                                       const std::shared_ptr<arrow::Table>& data,
                                       const std::string& default_timestamp_field) {
  const registry::Definitions& defs = state.defs;
  const registry::FeatureView* v = nullptr;
  std::vector<std::string> view_names;
  for (const auto& fv : defs.feature_views) {
    view_names.push_back(fv.name);
    if (fv.name == feature_view) v = &fv;
  }
  if (v == nullptr) {
    return UserError(ErrorKind::kFeatureNotFound, "no feature view named '" + feature_view +
                                                      "' (feature views: " + JoinNames(view_names) +
                                                      ")");
  }
  if (!v->online) {
    return UserError(
        ErrorKind::kFeatureNotFound,
        "feature view '" + v->name + "' is not served online (online: false in its definition)");
  }
  const registry::Source* src = defs.FindSource(v->source);
  if (!src) return UserError(ErrorKind::kObjectNotFound, "unknown source '" + v->source + "'");
  // The columns EncodeViewRows reads, in its order, with the types they must have.
  std::vector<std::pair<std::string, std::shared_ptr<arrow::DataType>>> wanted;
  size_t num_keys = 0;
  for (const auto& en : v->entities) {
    const auto* e = defs.FindEntity(en);
    if (!e) return UserError(ErrorKind::kObjectNotFound, "unknown entity '" + en + "'");
    for (const auto& k : e->join_keys) {
      wanted.emplace_back(k.name, k.type);
      ++num_keys;
    }
  }
  const std::string ts_col =
      src->timestamp_field.empty() ? default_timestamp_field : src->timestamp_field;
  wanted.emplace_back(ts_col, arrow::timestamp(arrow::TimeUnit::MICRO, "UTC"));
  const bool has_created = !src->created_timestamp_field.empty();
  if (has_created) {
    wanted.emplace_back(src->created_timestamp_field,
                        arrow::timestamp(arrow::TimeUnit::MICRO, "UTC"));
  }
  Layout layout = MakeLayout(*v);
  for (size_t i = 0; i < layout.names.size(); ++i) {
    wanted.emplace_back(layout.names[i], layout.types[i]);
  }
  const int64_t n = data->num_rows();
  arrow::ArrayVector columns;
  arrow::FieldVector fields;
  for (const auto& [name, type] : wanted) {
    auto col = data->GetColumnByName(name);
    if (!col) {
      std::vector<std::string> names;
      for (const auto& w : wanted) names.push_back(w.first);
      return UserError(ErrorKind::kSchemaMismatch, "rows for feature view '" + v->name +
                                                       "' have no column '" + name +
                                                       "' (it needs: " + JoinNames(names) + ")");
    }
    std::shared_ptr<arrow::Array> in;
    if (col->num_chunks() == 1) {
      in = col->chunk(0);
    } else {
      ARROW_ASSIGN_OR_RAISE(in, arrow::Concatenate(col->chunks()));
    }
    ARROW_ASSIGN_OR_RAISE(auto conv, ingest::ConvertColumn(in, type));
    if (!conv.errors.empty()) {
      const auto& e = conv.errors.front();
      return UserError(ErrorKind::kDataRejected,
                       "rows for feature view '" + v->name + "': column '" + name + "', row " +
                           std::to_string(e.row) + ": value " + ingest::Abbreviate(e.value) +
                           " is " + e.reason + " (" + std::to_string(conv.errors.size()) +
                           " bad value(s); nothing was written)");
    }
    columns.push_back(conv.values);
    fields.push_back(arrow::field(name, conv.values->type()));
  }
  auto view_data = arrow::Table::Make(arrow::schema(fields), columns, n);
  std::vector<KeyValue> writes;
  std::string layout_value;
  AppendVersionPrefix(0, std::nullopt, &layout_value);
  layout_value += SerializeLayout(layout);
  writes.push_back({LayoutKey(v->name, layout.fingerprint), layout_value});
  size_t count = writes.size();
  ARROW_RETURN_NOT_OK(EncodeViewRows(*v, *src, layout, num_keys, has_created, *view_data, INT64_MIN,
                                     INT64_MAX, &writes, &count));
  writes.resize(count);
  ARROW_RETURN_NOT_OK(store.Write(writes, WriteOptions{}));
  return static_cast<int64_t>(count - 1);
}

}  // namespace stratalake::online
