// Push: rows for a push source, written online (every online view on the
// source) and/or appended to the source's Delta table.
#include <arrow/api.h>
#include <arrow/compute/api.h>

#include "common/errors.h"
#include "ingest/convert.h"
#include "online/codec.h"
#include "online/window_tiles.h"
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

std::string JoinNames(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

// Converts a written column to `type` with ingestion's rules (all or nothing).
// Integers written to a timestamp are seconds since the epoch (Feast's
// UnixTimestamp), also inside lists.
arrow::Result<std::shared_ptr<arrow::Array>> ConvertWritten(
    const std::string& view, const std::string& column, std::shared_ptr<arrow::Array> in,
    const std::shared_ptr<arrow::DataType>& type) {
  auto seconds_to_micros = [](const std::shared_ptr<arrow::Array>& a,
                              const std::shared_ptr<arrow::DataType>& ts)
      -> arrow::Result<std::shared_ptr<arrow::Array>> {
    ARROW_ASSIGN_OR_RAISE(auto micros, arrow::compute::Multiply(a, arrow::Datum(int64_t{1000000}),
                                                                arrow::compute::ArithmeticOptions(
                                                                    /*check_overflow=*/true)));
    return micros.make_array()->View(ts);
  };
  if (type->id() == arrow::Type::TIMESTAMP && arrow::is_integer(in->type_id())) {
    ARROW_ASSIGN_OR_RAISE(auto wide, arrow::compute::Cast(*in, arrow::int64()));
    ARROW_ASSIGN_OR_RAISE(in, seconds_to_micros(wide, arrow::timestamp(arrow::TimeUnit::MICRO)));
  } else if (type->id() == arrow::Type::LIST && in->type_id() == arrow::Type::LIST) {
    const auto& item = static_cast<const arrow::ListType&>(*type).value_type();
    const auto& list = static_cast<const arrow::ListArray&>(*in);
    if (item->id() == arrow::Type::TIMESTAMP && arrow::is_integer(list.value_type()->id())) {
      ARROW_ASSIGN_OR_RAISE(auto flat, arrow::compute::Cast(*list.values(), arrow::int64()));
      ARROW_ASSIGN_OR_RAISE(auto ts,
                            seconds_to_micros(flat, arrow::timestamp(arrow::TimeUnit::MICRO)));
      in = std::make_shared<arrow::ListArray>(arrow::list(ts->type()), list.length(),
                                              list.value_offsets(), ts, list.null_bitmap(),
                                              list.null_count(), list.offset());
    }
  }
  ARROW_ASSIGN_OR_RAISE(auto conv, ingest::ConvertColumn(in, type));
  if (!conv.errors.empty()) {
    const auto& e = conv.errors.front();
    return UserError(ErrorKind::kDataRejected,
                     "write to feature view '" + view + "': column '" + column + "', row " +
                         std::to_string(e.row) + ": value " + ingest::Abbreviate(e.value) + " is " +
                         e.reason + " (" + std::to_string(conv.errors.size()) +
                         " bad value(s); nothing was written)");
  }
  return conv.values;
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

namespace {

// Push's work; `streamed`: rows of a kafka source decoded by `stratalake stream`.
arrow::Result<PushResult> PushRows(const repo::FeatureRepository& repo,
                                   const registry::RegistryState& state, OnlineStore* store,
                                   const std::string& push_source,
                                   const std::shared_ptr<arrow::Table>& data, PushTarget to,
                                   bool streamed) {
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
  if (streamed && src->type != registry::SourceType::kKafka) {
    return UserError(ErrorKind::kDefinitionError, "source '" + push_source + "' is a " +
                                                      registry::SourceTypeName(src->type) +
                                                      " source, not a kafka source");
  }
  if (!streamed && src->type != registry::SourceType::kPush) {
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
      if (!v.aggregations.empty()) {
        // Window views keep tiles: pushed rows are added to them (streamed rows are
        // added with their kafka ids by WriteStreamedWindowRows).
        if (!streamed) {
          arrow::FieldVector mf;
          for (const auto& f : typed->schema()->fields())
            mf.push_back(f->WithName(MappedName(*src, f->name())));
          auto mapped = arrow::Table::Make(arrow::schema(mf), typed->columns(), n);
          ARROW_RETURN_NOT_OK(
              WriteWindowEvents(*store, defs, v, ts_col, *mapped, false, std::nullopt));
        }
        ++result.views_written;
        continue;
      }
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

}  // namespace

arrow::Result<PushResult> Push(const repo::FeatureRepository& repo,
                               const registry::RegistryState& state, OnlineStore* store,
                               const std::string& push_source,
                               const std::shared_ptr<arrow::Table>& data, PushTarget to) {
  return PushRows(repo, state, store, push_source, data, to, /*streamed=*/false);
}

arrow::Result<PushResult> WriteStreamedRows(const repo::FeatureRepository& repo,
                                            const registry::RegistryState& state,
                                            OnlineStore* store, const std::string& kafka_source,
                                            const std::shared_ptr<arrow::Table>& data) {
  return PushRows(repo, state, store, kafka_source, data, PushTarget::kOnline,
                  /*streamed=*/true);
}

arrow::Status EncodeOnlineWrite(const registry::RegistryState& state, const std::string& view_name,
                                const std::shared_ptr<arrow::Table>& data,
                                std::vector<KeyValue>* writes) {
  const registry::Definitions& defs = state.defs;
  const registry::FeatureView* v = defs.FindFeatureView(view_name);
  if (!v) {
    std::vector<std::string> names;
    for (const auto& fv : defs.feature_views) names.push_back(fv.name);
    return UserError(
        ErrorKind::kFeatureNotFound,
        "unknown feature view '" + view_name + "' (feature views: " + JoinNames(names) + ")");
  }
  if (!v->online) {
    return UserError(
        ErrorKind::kFeatureNotFound,
        "feature view '" + v->name + "' is not served online (online: false in its definition)");
  }
  const registry::Source* src = defs.FindSource(v->source);
  if (!src) return UserError(ErrorKind::kObjectNotFound, "unknown source '" + v->source + "'");
  const int64_t n = data->num_rows();
  auto column = [&](const std::string& name) -> arrow::Result<std::shared_ptr<arrow::Array>> {
    auto c = data->GetColumnByName(name);
    if (!c) return nullptr;
    if (c->num_chunks() == 1) return c->chunk(0);
    return arrow::Concatenate(c->chunks());
  };
  auto first_of = [&](std::initializer_list<std::string> names,
                      std::string* found) -> arrow::Result<std::shared_ptr<arrow::Array>> {
    for (const auto& name : names) {
      if (name.empty()) continue;
      ARROW_ASSIGN_OR_RAISE(auto a, column(name));
      if (a) {
        *found = name;
        return a;
      }
    }
    return nullptr;
  };
  const auto ts_type = arrow::timestamp(arrow::TimeUnit::MICRO, "UTC");
  arrow::FieldVector fields;
  arrow::ArrayVector arrays;
  size_t num_keys = 0;
  for (const auto& en : v->entities) {
    const auto* e = defs.FindEntity(en);
    if (!e) return UserError(ErrorKind::kObjectNotFound, "unknown entity '" + en + "'");
    for (const auto& k : e->join_keys) {
      ARROW_ASSIGN_OR_RAISE(auto a, column(k.name));
      if (!a) {
        return UserError(
            ErrorKind::kSchemaMismatch,
            "write to feature view '" + v->name + "' lacks its join key column '" + k.name + "'");
      }
      ARROW_ASSIGN_OR_RAISE(a, ConvertWritten(v->name, k.name, a, k.type));
      fields.push_back(arrow::field(k.name, k.type));
      arrays.push_back(a);
      ++num_keys;
    }
  }
  const std::string& ts_field = src->timestamp_field;
  std::string ts_name;
  ARROW_ASSIGN_OR_RAISE(auto ts, first_of({"event_timestamp", ts_field}, &ts_name));
  if (!ts) {
    return UserError(ErrorKind::kSchemaMismatch,
                     "write to feature view '" + v->name +
                         "' lacks the event time: give it as column 'event_timestamp'" +
                         (ts_field.empty() ? std::string() : " or '" + ts_field + "'"));
  }
  ARROW_ASSIGN_OR_RAISE(ts, ConvertWritten(v->name, ts_name, ts, ts_type));
  if (ts->null_count() > 0) {
    return UserError(ErrorKind::kDataRejected, "write to feature view '" + v->name +
                                                   "': the event time '" + ts_name +
                                                   "' has null values");
  }
  fields.push_back(arrow::field(ts_name, ts_type));
  arrays.push_back(ts);
  std::string created_name;
  ARROW_ASSIGN_OR_RAISE(
      auto created,
      first_of({"created", "created_timestamp", src->created_timestamp_field}, &created_name));
  const bool has_created = created != nullptr;
  if (has_created) {
    ARROW_ASSIGN_OR_RAISE(created, ConvertWritten(v->name, created_name, created, ts_type));
    fields.push_back(arrow::field(created_name, ts_type));
    arrays.push_back(created);
  }
  Layout layout = MakeLayout(*v);
  for (size_t f = 0; f < layout.names.size(); ++f) {
    const std::string& name = layout.names[f];
    ARROW_ASSIGN_OR_RAISE(auto a, column(name));
    if (!a) {
      return UserError(ErrorKind::kSchemaMismatch,
                       "write to feature view '" + v->name + "' lacks feature column '" + name +
                           "' (give every feature of the view; null for no value)");
    }
    ARROW_ASSIGN_OR_RAISE(a, ConvertWritten(v->name, name, a, layout.types[f]));
    fields.push_back(arrow::field(name, layout.types[f]));
    arrays.push_back(a);
  }
  auto view_data = arrow::Table::Make(arrow::schema(fields), arrays, n);
  writes->push_back(LayoutWrite(*v));
  size_t count = writes->size();
  ARROW_RETURN_NOT_OK(EncodeViewRows(*v, *src, layout, num_keys, has_created, *view_data, INT64_MIN,
                                     INT64_MAX, writes, &count));
  writes->resize(count);
  return arrow::Status::OK();
}

KeyValue LayoutWrite(const registry::FeatureView& view) {
  Layout layout = MakeLayout(view);
  std::string value;
  AppendVersionPrefix(0, std::nullopt, &value);
  value += SerializeLayout(layout);
  return {LayoutKey(view.name, layout.fingerprint), std::move(value)};
}

arrow::Result<PushResult> WriteToOnlineStore(const registry::RegistryState& state,
                                             OnlineStore* store, const std::string& view_name,
                                             const std::shared_ptr<arrow::Table>& data) {
  std::vector<KeyValue> writes;
  ARROW_RETURN_NOT_OK(EncodeOnlineWrite(state, view_name, data, &writes));
  if (!store) return arrow::Status::Invalid("write to the online store: no online store");
  ARROW_RETURN_NOT_OK(store->Write(writes, WriteOptions{}));
  PushResult result;
  result.rows = data->num_rows();
  result.views_written = 1;
  return result;
}

}  // namespace stratalake::online
