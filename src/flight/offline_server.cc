// The Arrow Flight server of Feast's remote offline store protocol
// (stratalake/offline_server.h). Each call parses its command
// (flight/offline_command.h), reads the uploaded rows under a byte limit, and
// runs the public retrieval API; nothing here knows the engine's internals.
#include "stratalake/offline_server.h"

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <deque>
#include <iostream>
#include <map>
#include <mutex>
#include <utility>

#include <arrow/api.h>
#include <arrow/compute/api.h>
#include <arrow/flight/api.h>
#include <arrow/util/byte_size.h>

#include "flight/offline_command.h"
#include "stratalake/delta.h"
#include "stratalake/registry.h"
#include "stratalake/retrieval.h"

namespace stratalake::flight {

namespace fl = arrow::flight;

namespace {

constexpr int64_t kRowsPerBatch = 64 * 1024;

// An upload kept by DoPut for the older GetFlightInfo -> DoGet flow.
struct PendingFlight {
  std::string key;  // the descriptor's command, also the ticket
  OfflineCommand command;
  std::shared_ptr<arrow::Table> entities;
};

// True for the placeholder table Feast sends when a call has no rows of its own.
bool IsPlaceholder(const arrow::Table& t) {
  return t.num_columns() == 1 && t.schema()->field(0)->name() == "key";
}

// Feast's rule (offline_utils.infer_event_timestamp_from_entity_df):
// "event_timestamp" if present, else the one timestamp column.
arrow::Result<std::string> EntityTimestampColumn(const arrow::Schema& schema) {
  if (schema.GetFieldIndex("event_timestamp") >= 0) return std::string();
  std::vector<std::string> found;
  for (const auto& f : schema.fields()) {
    if (f->type()->id() == arrow::Type::TIMESTAMP || f->type()->id() == arrow::Type::DATE32 ||
        f->type()->id() == arrow::Type::DATE64) {
      found.push_back(f->name());
    }
  }
  if (found.size() == 1) return found[0];
  return arrow::Status::Invalid(
      "offline server: the entity rows need an 'event_timestamp' column (or exactly one "
      "timestamp column); they have ",
      found.size(), " timestamp columns");
}

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

struct OfflineServer::Impl : public fl::FlightServerBase {
  std::shared_ptr<repo::FeatureRepository> repo;
  std::shared_ptr<registry::Registry> reg;
  OfflineServerOptions options;
  std::string host;
  std::atomic<bool> stopped{false};

  // One call at a time uses the registry and the engine: a retrieval uses every
  // core, and the registry's store is one connection.
  std::mutex engine_mu;
  std::mutex pending_mu;
  std::deque<PendingFlight> pending;  // guarded by pending_mu

  void Log(const std::string& what, const arrow::Status& st) const {
    if (!options.log_requests) return;
    std::cerr << "offline server: " << what << ": " << (st.ok() ? "ok" : st.ToString())
              << std::endl;
  }

  arrow::Result<OfflineCommand> CommandOf(const fl::FlightDescriptor& d) const {
    if (d.type != fl::FlightDescriptor::CMD) {
      return arrow::Status::Invalid(
          "offline server: the Flight descriptor must be a command (Feast's JSON), not a path");
    }
    return ParseOfflineCommand(d.cmd);
  }

  // Every batch the client sends, up to options.max_upload_bytes.
  arrow::Result<std::shared_ptr<arrow::Table>> ReadUpload(fl::FlightMessageReader* reader) const {
    ARROW_ASSIGN_OR_RAISE(auto schema, reader->GetSchema());
    std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
    int64_t bytes = 0;
    while (true) {
      ARROW_ASSIGN_OR_RAISE(fl::FlightStreamChunk chunk, reader->Next());
      if (!chunk.data) break;
      bytes += arrow::util::TotalBufferSize(*chunk.data);
      if (bytes > options.max_upload_bytes) {
        return arrow::Status::CapacityError(
            "offline server: the uploaded entity rows exceed ", options.max_upload_bytes,
            " bytes (serve-offline --max-upload-bytes); send fewer rows per call");
      }
      ARROW_RETURN_NOT_OK(chunk.data->ValidateFull());
      batches.push_back(std::move(chunk.data));
    }
    return arrow::Table::FromRecordBatches(schema, batches);
  }

  // The registry's head, and the request for `cmd`'s features in it.
  arrow::Status ResolveFeatures(const OfflineCommand& cmd, retrieval::HistoricalRequest* req) {
    if (cmd.project != repo->config().project) {
      return arrow::Status::Invalid("offline server: project '", cmd.project,
                                    "' is not served here; this server serves project '",
                                    repo->config().project, "'");
    }
    ARROW_ASSIGN_OR_RAISE(auto state, reg->Load());
    req->registry_version = state->version;
    // A feature service of ours that resolves to exactly these references
    // (Feast expands a service into "alias_or_view:feature" before sending):
    // run it as that service, so aliases and join-key maps apply.
    const std::vector<std::string>& want = cmd.feature_refs;
    std::vector<std::string> want_sorted = want;
    std::sort(want_sorted.begin(), want_sorted.end());
    std::string same_set;
    for (const auto& svc : state->defs.feature_services) {
      auto views = registry::ResolveFeatureRequest(state->defs, {}, svc.name);
      if (!views.ok()) continue;
      std::vector<std::string> refs;
      for (const auto& v : *views) {
        for (const auto& f : v.features) refs.push_back(v.label + ":" + f);
      }
      if (refs == want) {
        req->feature_service = svc.name;
        return arrow::Status::OK();
      }
      std::sort(refs.begin(), refs.end());
      if (same_set.empty() && refs == want_sorted) same_set = svc.name;
    }
    if (!same_set.empty()) {
      req->feature_service = same_set;
      return arrow::Status::OK();
    }
    for (size_t i = 0; i < cmd.name_aliases.size(); ++i) {
      if (cmd.name_aliases[i] && *cmd.name_aliases[i] != cmd.feature_view_names[i]) {
        return arrow::Status::KeyError(
            "offline server: feature view '", cmd.feature_view_names[i], "' is requested as '",
            *cmd.name_aliases[i],
            "' (a feature service's alias), and no feature service in StrataLake's registry "
            "resolves to exactly the requested features [",
            Join(want), "]; define one (stratalake import-feast converts Feast's) and apply it");
      }
    }
    req->features = want;
    return arrow::Status::OK();
  }

  arrow::Result<std::shared_ptr<arrow::Table>> Historical(const OfflineCommand& cmd,
                                                          std::shared_ptr<arrow::Table> entities) {
    if (!entities || IsPlaceholder(*entities)) {
      return arrow::Status::NotImplemented(
          "offline server: get_historical_features without entity rows is not supported by "
          "StrataLake; pass entity_df (a DataFrame with the join keys and event_timestamp)");
    }
    std::lock_guard<std::mutex> lock(engine_mu);
    retrieval::HistoricalRequest req;
    ARROW_RETURN_NOT_OK(ResolveFeatures(cmd, &req));
    ARROW_ASSIGN_OR_RAISE(req.timestamp_column, EntityTimestampColumn(*entities->schema()));
    req.entities = std::move(entities);
    req.full_feature_names = cmd.full_feature_names;
    req.memory_budget_bytes = options.memory_budget_bytes;
    ARROW_ASSIGN_OR_RAISE(auto result, retrieval::GetHistoricalFeatures(*repo, req));
    return result.table;
  }

  arrow::Result<const registry::Source*> FindSource(const registry::Definitions& defs,
                                                    const std::string& name) const {
    const registry::Source* s = defs.FindSource(name);
    if (!s) {
      std::vector<std::string> names;
      for (const auto& x : defs.sources) names.push_back(x.name);
      return arrow::Status::KeyError("offline server: data source '", name,
                                     "' is not in StrataLake's registry (sources: ", Join(names),
                                     "); convert the Feast repository with `stratalake "
                                     "import-feast` and `stratalake apply` it");
    }
    return s;
  }

  arrow::Result<std::shared_ptr<arrow::Table>> ColumnsOf(const std::string& source) {
    std::lock_guard<std::mutex> lock(engine_mu);
    ARROW_ASSIGN_OR_RAISE(auto state, reg->Load());
    ARROW_ASSIGN_OR_RAISE(const registry::Source* s, FindSource(state->defs, source));
    ARROW_ASSIGN_OR_RAISE(auto schema, repo->SourceSchema(*s));
    if (!schema) {
      return arrow::Status::Invalid("offline server: data source '", source,
                                    "' has no declared schema and no table yet; ingest into it "
                                    "first");
    }
    arrow::StringBuilder names, types;
    for (const auto& f : schema->fields()) {
      ARROW_RETURN_NOT_OK(names.Append(f->name()));
      ARROW_RETURN_NOT_OK(types.Append(f->type()->ToString()));
    }
    ARROW_ASSIGN_OR_RAISE(auto n, names.Finish());
    ARROW_ASSIGN_OR_RAISE(auto t, types.Finish());
    auto out_schema =
        arrow::schema({arrow::field("name", arrow::utf8()), arrow::field("type", arrow::utf8())});
    return arrow::Table::Make(out_schema, {n, t});
  }

  // Feast's materialization read: a source's rows whose event time is in
  // [start, end], with the columns asked for (named as the views name them).
  arrow::Result<std::shared_ptr<arrow::Table>> PullAll(const OfflineCommand& cmd) {
    std::lock_guard<std::mutex> lock(engine_mu);
    ARROW_ASSIGN_OR_RAISE(auto state, reg->Load());
    ARROW_ASSIGN_OR_RAISE(const registry::Source* src,
                          FindSource(state->defs, cmd.data_source_name));
    if (src->type == registry::SourceType::kParquet) {
      return arrow::Status::NotImplemented(
          "offline server: pull_all_from_table_or_query reads Delta sources; '", src->name,
          "' is a Parquet source (ingest its files into a Delta source)");
    }
    std::map<std::string, std::string> stored_of;  // view's name -> stored column
    for (const auto& [stored, mapped] : src->field_mapping) stored_of[mapped] = stored;
    std::vector<std::string> names;
    auto add = [&](const std::string& n) {
      if (!n.empty() && std::find(names.begin(), names.end(), n) == names.end()) {
        names.push_back(n);
      }
    };
    for (const auto& n : cmd.join_key_columns) add(n);
    for (const auto& n : cmd.feature_name_columns) add(n);
    add(cmd.timestamp_field);
    add(cmd.created_timestamp_column);
    std::vector<std::string> stored;
    for (const auto& n : names) {
      auto it = stored_of.find(n);
      stored.push_back(it == stored_of.end() ? n : it->second);
    }
    ARROW_ASSIGN_OR_RAISE(auto table, delta::DeltaTable::Open(repo->TableUri(src->path)));
    delta::ReadOptions ro;
    ro.columns = stored;
    ARROW_ASSIGN_OR_RAISE(auto rows, table->Read(ro));
    ARROW_ASSIGN_OR_RAISE(rows, rows->RenameColumns(names));
    auto ts = rows->GetColumnByName(cmd.timestamp_field);
    if (!ts || ts->type()->id() != arrow::Type::TIMESTAMP) {
      return arrow::Status::Invalid("offline server: '", cmd.timestamp_field, "' of source '",
                                    src->name, "' is not a timestamp column");
    }
    if (!cmd.start_us && !cmd.end_us) return rows;
    const auto& type = static_cast<const arrow::TimestampType&>(*ts->type());
    auto in_unit = [&](int64_t us) -> int64_t {
      switch (type.unit()) {
        case arrow::TimeUnit::SECOND:
          return us / 1000000;
        case arrow::TimeUnit::MILLI:
          return us / 1000;
        case arrow::TimeUnit::MICRO:
          return us;
        case arrow::TimeUnit::NANO:
          return us > INT64_MAX / 1000 ? INT64_MAX : us < INT64_MIN / 1000 ? INT64_MIN : us * 1000;
      }
      return us;
    };
    namespace cp = arrow::compute;
    arrow::Datum keep;
    auto bound = [&](const char* op, int64_t us) -> arrow::Result<arrow::Datum> {
      auto scalar = std::make_shared<arrow::TimestampScalar>(in_unit(us), ts->type());
      return cp::CallFunction(op, {arrow::Datum(ts), arrow::Datum(scalar)});
    };
    if (cmd.start_us) {
      ARROW_ASSIGN_OR_RAISE(keep, bound("greater_equal", *cmd.start_us));
    }
    if (cmd.end_us) {
      ARROW_ASSIGN_OR_RAISE(auto upper, bound("less_equal", *cmd.end_us));
      if (keep.is_value()) {
        ARROW_ASSIGN_OR_RAISE(keep, cp::CallFunction("and_kleene", {keep, upper}));
      } else {
        keep = std::move(upper);
      }
    }
    ARROW_ASSIGN_OR_RAISE(auto filtered, cp::Filter(rows, keep));
    return filtered.table();
  }

  // pull_latest_from_table_or_query: of `rows` (PullAll's), the latest row of
  // each join-key combination (latest event time, then latest created time),
  // in join-key order.
  static arrow::Result<std::shared_ptr<arrow::Table>> LatestPerKey(
      const OfflineCommand& cmd, const std::shared_ptr<arrow::Table>& rows) {
    namespace cp = arrow::compute;
    std::vector<cp::SortKey> keys;
    auto add = [&](const std::string& name, cp::SortOrder o) -> arrow::Status {
      const int i = rows->schema()->GetFieldIndex(name);
      if (i < 0) return arrow::Status::Invalid("offline server: no column '", name, "'");
      keys.push_back(cp::SortKey(arrow::FieldRef(i), o));
      return arrow::Status::OK();
    };
    for (const auto& k : cmd.join_key_columns) {
      ARROW_RETURN_NOT_OK(add(k, cp::SortOrder::Ascending));
    }
    ARROW_RETURN_NOT_OK(add(cmd.timestamp_field, cp::SortOrder::Descending));
    if (!cmd.created_timestamp_column.empty()) {
      ARROW_RETURN_NOT_OK(add(cmd.created_timestamp_column, cp::SortOrder::Descending));
    }
    cp::SortOptions order(keys, cp::NullPlacement::AtEnd);
    ARROW_ASSIGN_OR_RAISE(auto indices, cp::SortIndices(arrow::Datum(rows), order));
    ARROW_ASSIGN_OR_RAISE(auto sorted_datum, cp::Take(rows, indices));
    ARROW_ASSIGN_OR_RAISE(auto sorted, sorted_datum.table()->CombineChunksToBatch());
    std::vector<std::shared_ptr<arrow::Array>> key_cols;
    for (const auto& k : cmd.join_key_columns) {
      auto c = sorted->GetColumnByName(k);
      if (!c) return arrow::Status::Invalid("offline server: no join key column '", k, "'");
      key_cols.push_back(std::move(c));
    }
    // The first row of each run of equal keys (nulls equal to nulls).
    arrow::UInt64Builder first;
    for (int64_t i = 0; i < sorted->num_rows(); ++i) {
      bool same = i > 0;
      for (size_t k = 0; same && k < key_cols.size(); ++k) {
        same = key_cols[k]->RangeEquals(i, i + 1, i - 1, *key_cols[k]);
      }
      if (!same) ARROW_RETURN_NOT_OK(first.Append(static_cast<uint64_t>(i)));
    }
    ARROW_ASSIGN_OR_RAISE(auto take, first.Finish());
    ARROW_ASSIGN_OR_RAISE(auto latest, cp::Take(sorted, take));
    return arrow::Table::FromRecordBatches({latest.record_batch()});
  }

  // A read api's answer (DoExchange and DoGet).
  arrow::Result<std::shared_ptr<arrow::Table>> Read(const OfflineCommand& cmd,
                                                    std::shared_ptr<arrow::Table> upload) {
    switch (cmd.api) {
      case OfflineApi::kGetHistoricalFeatures:
        return Historical(cmd, std::move(upload));
      case OfflineApi::kGetTableColumnNamesAndTypes:
        return ColumnsOf(cmd.data_source_name);
      case OfflineApi::kPullAll:
        return PullAll(cmd);
      case OfflineApi::kPullLatest: {
        ARROW_ASSIGN_OR_RAISE(auto rows, PullAll(cmd));
        return LatestPerKey(cmd, rows);
      }
      case OfflineApi::kValidateDataSource:
        break;
    }
    return arrow::Status::Invalid("offline server: ", cmd.api_name,
                                  " is a write call (DoPut), not a read (DoExchange/DoGet)");
  }

  // The command, and the rows uploaded with it. The upload is read even when
  // the command is bad, so that the client, still writing, gets our error
  // rather than a broken stream.
  arrow::Result<std::pair<OfflineCommand, std::shared_ptr<arrow::Table>>> Receive(
      fl::FlightMessageReader* reader) const {
    auto cmd = CommandOf(reader->descriptor());
    auto upload = ReadUpload(reader);
    ARROW_RETURN_NOT_OK(cmd.status());  // the more useful of two errors
    ARROW_RETURN_NOT_OK(upload.status());
    return std::make_pair(std::move(*cmd), std::move(*upload));
  }

  arrow::Status DoExchangeImpl(fl::FlightMessageReader* reader, fl::FlightMessageWriter* writer) {
    ARROW_ASSIGN_OR_RAISE(auto received, Receive(reader));
    auto& [cmd, upload] = received;
    ARROW_ASSIGN_OR_RAISE(auto table, Read(cmd, std::move(upload)));
    ARROW_RETURN_NOT_OK(writer->Begin(table->schema()));
    arrow::TableBatchReader batches(*table);
    batches.set_chunksize(kRowsPerBatch);
    std::shared_ptr<arrow::RecordBatch> batch;
    while (true) {
      ARROW_RETURN_NOT_OK(batches.ReadNext(&batch));
      if (!batch) break;
      ARROW_RETURN_NOT_OK(writer->WriteRecordBatch(*batch));
    }
    return arrow::Status::OK();
  }

  arrow::Status DoPutImpl(fl::FlightMessageReader* reader) {
    const std::string key = reader->descriptor().cmd;
    ARROW_ASSIGN_OR_RAISE(auto received, Receive(reader));
    auto& [cmd, upload] = received;
    if (cmd.api == OfflineApi::kValidateDataSource) {
      std::lock_guard<std::mutex> lock(engine_mu);
      ARROW_ASSIGN_OR_RAISE(auto state, reg->Load());
      return FindSource(state->defs, cmd.data_source_name).status();
    }
    if (cmd.api != OfflineApi::kGetHistoricalFeatures) {
      return arrow::Status::Invalid("offline server: ", cmd.api_name,
                                    " is a read call (DoExchange), not a write (DoPut)");
    }
    std::lock_guard<std::mutex> lock(pending_mu);
    for (auto it = pending.begin(); it != pending.end(); ++it) {
      if (it->key == key) {
        pending.erase(it);
        break;
      }
    }
    pending.push_back(PendingFlight{key, std::move(cmd), std::move(upload)});
    while (static_cast<int>(pending.size()) > std::max(1, options.max_pending_flights)) {
      pending.pop_front();
    }
    return arrow::Status::OK();
  }

  // Runs `f`, turning exceptions into errors and logging the outcome.
  template <typename F>
  arrow::Status Guard(const std::string& what, F&& f) {
    arrow::Status st;
    try {
      st = f();
    } catch (const std::exception& e) {
      st = arrow::Status::UnknownError("offline server: internal error: ", e.what());
    }
    Log(what, st);
    return st;
  }

  arrow::Status DoExchange(const fl::ServerCallContext&,
                           std::unique_ptr<fl::FlightMessageReader> reader,
                           std::unique_ptr<fl::FlightMessageWriter> writer) override {
    return Guard("DoExchange", [&] { return DoExchangeImpl(reader.get(), writer.get()); });
  }

  arrow::Status DoPut(const fl::ServerCallContext&, std::unique_ptr<fl::FlightMessageReader> reader,
                      std::unique_ptr<fl::FlightMetadataWriter>) override {
    return Guard("DoPut", [&] { return DoPutImpl(reader.get()); });
  }

  arrow::Status GetFlightInfo(const fl::ServerCallContext&, const fl::FlightDescriptor& d,
                              std::unique_ptr<fl::FlightInfo>* info) override {
    return Guard("GetFlightInfo", [&]() -> arrow::Status {
      {
        std::lock_guard<std::mutex> lock(pending_mu);
        bool found = false;
        for (const auto& p : pending) found = found || p.key == d.cmd;
        if (!found || d.type != fl::FlightDescriptor::CMD) {
          return arrow::Status::KeyError(
              "offline server: flight not found; send the entity rows with DoPut (same "
              "descriptor) first");
        }
      }
      ARROW_ASSIGN_OR_RAISE(auto loc, fl::Location::ForGrpcTcp(host, port()));
      fl::FlightEndpoint endpoint;
      endpoint.ticket.ticket = d.cmd;
      endpoint.locations.push_back(loc);
      ARROW_ASSIGN_OR_RAISE(auto made,
                            fl::FlightInfo::Make(*arrow::schema({}), d, {endpoint}, -1, -1));
      *info = std::make_unique<fl::FlightInfo>(std::move(made));
      return arrow::Status::OK();
    });
  }

  arrow::Status DoGet(const fl::ServerCallContext&, const fl::Ticket& ticket,
                      std::unique_ptr<fl::FlightDataStream>* stream) override {
    return Guard("DoGet", [&]() -> arrow::Status {
      PendingFlight flight;
      {
        std::lock_guard<std::mutex> lock(pending_mu);
        auto it = pending.begin();
        while (it != pending.end() && it->key != ticket.ticket) ++it;
        if (it == pending.end()) {
          return arrow::Status::KeyError(
              "offline server: unknown ticket (each one is served once, after DoPut and "
              "GetFlightInfo)");
        }
        flight = std::move(*it);
        pending.erase(it);
      }
      ARROW_ASSIGN_OR_RAISE(auto table, Read(flight.command, std::move(flight.entities)));
      auto reader = std::make_shared<arrow::TableBatchReader>(table);
      reader->set_chunksize(kRowsPerBatch);
      *stream = std::make_unique<fl::RecordBatchStream>(std::move(reader));
      return arrow::Status::OK();
    });
  }

  arrow::Status ListActions(const fl::ServerCallContext&,
                            std::vector<fl::ActionType>* actions) override {
    actions->clear();
    return arrow::Status::OK();
  }

  arrow::Status DoAction(const fl::ServerCallContext&, const fl::Action& action,
                         std::unique_ptr<fl::ResultStream>*) override {
    return arrow::Status::NotImplemented("offline server: no actions are served (asked for '",
                                         action.type.substr(0, 100), "')");
  }
};

OfflineServer::OfflineServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

OfflineServer::~OfflineServer() {
  if (impl_) (void)Shutdown();
}

arrow::Result<std::unique_ptr<OfflineServer>> OfflineServer::Start(
    std::shared_ptr<repo::FeatureRepository> repo, const OfflineServerOptions& options) {
  if (options.port < 0 || options.port > 65535) {
    return arrow::Status::Invalid("offline server: port must be 0..65535, not ", options.port);
  }
  auto impl = std::make_unique<Impl>();
  ARROW_ASSIGN_OR_RAISE(impl->reg, repo->registry());
  impl->repo = std::move(repo);
  impl->options = options;
  impl->host = options.host;
  ARROW_ASSIGN_OR_RAISE(auto loc, fl::Location::ForGrpcTcp(options.host, options.port));
  fl::FlightServerOptions fo(loc);
  auto st = impl->Init(fo);
  if (!st.ok()) {
    return arrow::Status::IOError("offline server: cannot serve on ", options.host, ":",
                                  options.port, ": ", st.message(),
                                  " (is the port taken or the host not this machine's? choose "
                                  "another --port or --host)");
  }
  return std::unique_ptr<OfflineServer>(new OfflineServer(std::move(impl)));
}

int OfflineServer::port() const { return impl_->port(); }

std::string OfflineServer::location() const {
  return "grpc+tcp://" + impl_->host + ":" + std::to_string(port());
}

arrow::Status OfflineServer::Shutdown() {
  if (impl_->stopped.exchange(true)) return arrow::Status::OK();
  return impl_->Shutdown();
}

arrow::Status OfflineServer::Wait(bool handle_signals) {
  if (!handle_signals) return impl_->Wait();
  ARROW_RETURN_NOT_OK(impl_->SetShutdownOnSignals({SIGTERM, SIGINT}));
  auto st = impl_->Serve();
  if (impl_->GotSignal() != 0) impl_->stopped = true;  // Serve shut it down
  return st;
}

}  // namespace stratalake::flight
