// Feast's remote offline store, served by StrataLake's engine: an Arrow Flight
// server that speaks the protocol of `feast serve_offline`, so that a Feast
// project configured with
//
//   offline_store: {type: remote, host: HOST, port: PORT}
//
// runs `get_historical_features(...).to_df()` / `.to_arrow()` on StrataLake's
// point-in-time engine (stratalake/retrieval.h) over this repository's
// registry and offline store. The answer is the table `stratalake
// get-historical` writes for the same entity rows and features.
//
// The protocol (Feast 0.67, feast/infra/offline_stores/remote.py): every call
// is a Flight descriptor of type CMD whose command is a JSON object with "api"
// and that api's parameters.
//  - DoExchange (Feast's read path): the client streams its entity rows (or a
//    one-column "key" table meaning "none"), the server answers with the
//    result. get_historical_features,
//    get_table_column_names_and_types_from_data_source,
//    pull_all_from_table_or_query (Feast's materialization: a Delta source's
//    rows in an event-time range, columns named as the views name them) and
//    pull_latest_from_table_or_query (of those, the latest per join key) are
//    served.
//  - DoPut (Feast's write path): validate_data_source is served (the source
//    must exist in the registry's head); get_historical_features is kept for
//    the older two-step flow GetFlightInfo (same descriptor) -> DoGet
//    (the ticket it returns), which runs it once.
//  - Everything else (persist, offline_write_batch,
//    write_logged_features, an entity_df given as SQL, retrieval by date range
//    without entity rows) is answered with a Flight error (NotImplemented)
//    that says it is unsupported and what to use instead.
// Feature references "view:feature" are resolved in this repository's
// registry. A request whose references use a feature service's alias is run as
// the StrataLake feature service that resolves to exactly those references
// (import-feast creates one per Feast feature service).
//
// Untrusted input: malformed commands, unknown apis, wrong parameter types,
// unknown views or features, too many or too large entity rows get a Flight
// error naming the problem (Invalid, KeyError/NotFound, CapacityError), never a
// crash. No authentication (Feast's auth: none); bind to 127.0.0.1 or put it
// behind a proxy that authenticates.
//
// Thread safety: every method of OfflineServer is thread-safe. Flight calls
// arrive on gRPC's threads; uploads are read concurrently, and the calls'
// registry reads and retrievals run one at a time (a retrieval uses every core).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <arrow/result.h>
#include <arrow/status.h>

#include "stratalake/repo.h"

namespace stratalake::flight {

struct OfflineServerOptions {
  /// Address to bind. Default: 127.0.0.1 (use 0.0.0.0 to serve other hosts).
  std::string host = "127.0.0.1";
  /// TCP port. Default: 8815, `feast serve_offline`'s. 0 = any free port (see port()).
  int port = 8815;
  /// Largest entity upload one call may send, in bytes of Arrow data; more is
  /// a CapacityError. Default: 1 GiB.
  int64_t max_upload_bytes = int64_t{1} << 30;
  /// get_historical_features uploads kept by DoPut for a later DoGet (the
  /// older flow); beyond it the oldest is dropped. Default: 16.
  int max_pending_flights = 16;
  /// Bytes the retrieval may hold (HistoricalRequest::memory_budget_bytes).
  /// Default: 0, the engine's default (a quarter of RAM).
  int64_t memory_budget_bytes = 0;
  /// Print one line per call on stderr. Default: false.
  bool log_requests = false;
};

class OfflineServer {
 public:
  /// Binds and starts serving `repo` on gRPC's threads; returns once the
  /// port accepts connections. Errors: the port cannot be bound (IOError).
  static arrow::Result<std::unique_ptr<OfflineServer>> Start(
      std::shared_ptr<repo::FeatureRepository> repo, const OfflineServerOptions& options);
  ~OfflineServer();

  /// The bound port (the chosen one when options.port was 0).
  int port() const;
  /// "grpc+tcp://HOST:PORT".
  std::string location() const;
  /// Stops accepting calls, waits for those in flight, and stops. Idempotent.
  arrow::Status Shutdown();
  /// Blocks until the server stops: after Shutdown(), or on SIGTERM / SIGINT
  /// when `handle_signals` (the process's handlers for them are replaced).
  arrow::Status Wait(bool handle_signals = false);

  struct Impl;

 private:
  explicit OfflineServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace stratalake::flight
