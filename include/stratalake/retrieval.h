// Point-in-time-correct training data: get_historical_features over a
// feature repository, and saved datasets that can be recreated exactly.
//
// Semantics (docs/training-datasets.md): for every entity row and requested
// feature view, the feature row with the same join keys whose event time is at
// or before the entity row's time (and within the view's TTL) — latest event
// time wins, then latest created time, then the most recently written row.
// No match gives nulls; entity rows keep their order, duplicates and every
// column, exactly as given (types, time zones, field metadata), followed by
// the features in request order. `as_of` reads every source at its Delta version as of that time,
// so rows that arrived later (late data, corrections) do not leak in.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <arrow/result.h>
#include <arrow/type_fwd.h>

#include "stratalake/progress.h"
#include "stratalake/repo.h"
#include "stratalake/warnings.h"

namespace stratalake::retrieval {

/// Opens the entity rows from their start, in input order. A streamed
/// retrieval calls it twice (its two passes over the rows), so every call must
/// return the same rows; the readers are used one at a time.
using EntityReaderFactory =
    std::function<arrow::Result<std::shared_ptr<arrow::RecordBatchReader>>()>;

struct HistoricalRequest {
  std::shared_ptr<arrow::Table> entities;
  /// Instead of `entities`: a source of the entity rows that can be read more
  /// than once, so that the streaming GetHistoricalFeatures never holds them all
  /// (e.g. a Parquet file read row group by row group). Ignored when `entities` is set.
  EntityReaderFactory open_entities;
  /// The entity table's time column; "" = "event_timestamp".
  std::string timestamp_column;
  /// "view:feature" or "view" (every feature of the view); or a feature service.
  std::vector<std::string> features;
  std::string feature_service;
  bool full_feature_names = false;  // name columns view__feature (alias__feature)
  /// Knowledge time (ms since epoch): read each source at its latest Delta
  /// version committed at or before it. Default: the latest version.
  std::optional<int64_t> as_of_ms;
  /// Registry version to resolve definitions at (default: head).
  std::optional<int64_t> registry_version;
  /// Pin sources to exact Delta versions (by source name); used by recreate.
  std::map<std::string, int64_t> source_versions;
  /// Bytes the retrieval may hold; 0 = engine default (a quarter of RAM). The
  /// in-memory GetHistoricalFeatures bounds only the feature side with it; the
  /// streaming one bounds the entity rows and the output as well.
  int64_t memory_budget_bytes = 0;
  bool progress = false;  // progress lines on stderr (when it is a terminal)
  /// Called after every source file read; returning false cancels the retrieval.
  ProgressCallback on_progress;
};

struct SourceRead {
  std::string source;
  std::string table_uri;
  int64_t version = -1;  // Delta version read (-1: the table did not exist yet / Parquet files)
  int64_t files_read = 0;
  int64_t files_total = 0;
  int64_t rows_read = 0;
};

struct HistoricalResult {
  std::shared_ptr<arrow::Table> table;    // entity columns, then features (null when streamed)
  std::shared_ptr<arrow::Schema> schema;  // the output's columns
  int64_t rows = 0;                       // output rows (= entity rows)
  int64_t registry_version = 0;
  std::vector<std::string> feature_refs;  // resolved "view:feature", in output order
  std::vector<SourceRead> sources;
  /// Once run: a kSourceMissing or kSourceEmpty per requested view whose source
  /// had no table or no rows at the version read, and kAllFeaturesNull when
  /// there are output rows and every feature of every one is null.
  std::vector<Warning> warnings;
};

/// Runs the retrieval against `repo`'s registry and offline store and returns
/// the whole output table. The entity rows come from `request.entities` (or
/// are all read from `request.open_entities`).
arrow::Result<HistoricalResult> GetHistoricalFeatures(const repo::FeatureRepository& repo,
                                                      const HistoricalRequest& request);

/// The default of HistoricalRequest::memory_budget_bytes: a quarter of physical RAM.
int64_t DefaultMemoryBudget();

/// Receives the output of a streamed retrieval. Used from one thread; the
/// caller owns it and finishes (closes) it after GetHistoricalFeatures returns.
class HistoricalSink {
 public:
  virtual ~HistoricalSink() = default;
  /// Called once, before any rows: the output schema (entity columns, then features).
  virtual arrow::Status Begin(const std::shared_ptr<arrow::Schema>& schema) = 0;
  /// Called with consecutive pieces of the output, in entity input order.
  virtual arrow::Status Write(const std::shared_ptr<arrow::Table>& rows) = 0;
};

/// Runs the retrieval and writes the output into `sink` (result.table stays
/// null). Memory: when the entity rows and the output fit half of an explicit
/// budget, or all of the default one (estimated from the entity rows' bytes
/// plus about 64 bytes per row and 16 per feature), this is the in-memory
/// retrieval above, written in one piece.
/// Otherwise the entity rows are read in passes from `request.open_entities`
/// (or sliced from `request.entities`): one for the time range, then in
/// input-order slices of about half the budget, each matched against every
/// view's join (AsOfJoin::Match; the views share the other half of the budget
/// and spill beyond it) and written before the next is read. The output is the
/// same as the in-memory retrieval's, row for row.
arrow::Result<HistoricalResult> GetHistoricalFeatures(const repo::FeatureRepository& repo,
                                                      const HistoricalRequest& request,
                                                      HistoricalSink* sink);

/// Checks `request` against the registry and `entity_schema` without reading
/// any data (features, services, names, the timestamp column and join keys):
/// the errors GetHistoricalFeatures would give before its first read. Returns
/// registry_version and feature_refs (the other fields stay empty).
arrow::Result<HistoricalResult> CheckHistoricalRequest(const repo::FeatureRepository& repo,
                                                       const HistoricalRequest& request,
                                                       const arrow::Schema& entity_schema);

// ---- plans for other engines (the Spark engine, python/stratalake/spark) ------------

/// One requested feature view as another engine must read and join it: the
/// same resolution (features, services, aliases, join_key_map, TTL) and the
/// same source version as GetHistoricalFeatures would use. Column names are
/// the ones stored in the Delta table (a source's field_mapping undone).
struct ViewReadPlan {
  std::string view;
  std::string source;
  std::string table_uri;
  int64_t version = -1;                  // Delta version to read; -1: no table (no rows)
  std::vector<std::string> entity_keys;  // entity table columns ...
  std::vector<std::string> source_keys;  // ... equal to these stored columns
  std::string time_column;               // stored event-time column
  std::string created_column;            // stored created-time column ("" = none)
  int64_t ttl_us = 0;                    // 0 = no TTL
  std::vector<std::string> features;     // stored feature columns, in output order of the view
  std::vector<std::shared_ptr<arrow::Field>> output_fields;  // their output names and types
};

struct HistoricalPlan {
  int64_t registry_version = 0;
  std::string timestamp_column;
  std::vector<std::string> feature_refs;  // "view:feature", in output order
  std::vector<ViewReadPlan> views;
  /// The output's feature columns in order: (index into views, index into its features).
  std::vector<std::pair<int, int>> order;
  /// The exact output schema: the entity columns as given, then the features.
  std::shared_ptr<arrow::Schema> schema;
  std::vector<SourceRead> sources;  // one per source, at the version to read (no counts)
  std::vector<Warning> warnings;    // kSourceMissing / kSourceEmpty, as the local engine gives
};

/// Resolves `request` against the registry and the entity schema and opens
/// every source's Delta log at the version the request asks for (as_of,
/// source_versions, else the latest), reading no data files: what another
/// engine needs to compute exactly GetHistoricalFeatures' output. Errors: those
/// of CheckHistoricalRequest, and a source that cannot be opened.
arrow::Result<HistoricalPlan> PlanHistoricalRetrieval(const repo::FeatureRepository& repo,
                                                      const HistoricalRequest& request,
                                                      const arrow::Schema& entity_schema);

// ---- files at the ends of a retrieval (src/retrieval/files.cc) -------------------

/// A whole .parquet or .csv file as one table (CSV: column types inferred from
/// all rows, ISO 8601 timestamps read as timestamps; Parquet: in the Arrow
/// schema the writer stored, where it has one, so that second-unit timestamps
/// and date64 columns, which Parquet stores as milliseconds and date32, come
/// back as they were written). Errors: the file cannot
/// be opened (kObjectNotFound, naming it); another name (Invalid, "'PATH' must
/// end in .parquet or .csv").
arrow::Result<std::shared_ptr<arrow::Table>> ReadTableFile(const std::string& path);

/// The entity rows of a Parquet file as HistoricalRequest::open_entities: each
/// call opens the file again and reads it a row group at a time (in the stored
/// Arrow schema, as ReadTableFile). Errors: the
/// file cannot be opened (kObjectNotFound, naming it).
arrow::Result<EntityReaderFactory> ParquetEntityReader(const std::string& path);

/// The entity rows of a CSV file as HistoricalRequest::open_entities. A file
/// of at most half the memory budget (`memory_budget_bytes`, 0 = the default)
/// is read whole on each call, as ReadTableFile reads it, so a later block can
/// still widen a column's type; a larger one is streamed in blocks (1 MiB),
/// its column types taken from its first block. Errors as ParquetEntityReader.
arrow::Result<EntityReaderFactory> CsvEntityReader(const std::string& path,
                                                   int64_t memory_budget_bytes = 0);

/// ParquetEntityReader or CsvEntityReader by the name's ending (.parquet,
/// .csv); another name is Invalid ("'PATH' must end in .parquet or .csv").
/// Whether the retrieval then holds the rows or streams them is decided by the
/// streaming GetHistoricalFeatures, from the rows it reads.
arrow::Result<EntityReaderFactory> EntityFileReader(const std::string& path,
                                                    int64_t memory_budget_bytes = 0);

/// A sink that writes a streamed retrieval's output to a file under
/// PATH.partial, renamed into place by Close(); destroyed before that, it
/// removes the partial file (an error leaves no output file behind). Written
/// around the page cache unless STRATALAKE_DIRECT_IO=0. Not thread-safe (one
/// retrieval writes into it).
class FileSink : public HistoricalSink {
 public:
  /// Finishes the file and moves it to its path.
  virtual arrow::Status Close() = 0;
};

/// Writes Parquet as the output arrives (each Write's rows start a row group;
/// at most 1Mi rows per row group, columns encoded on all cores, finished row
/// groups copied to the file in the background).
class ParquetFileSink final : public FileSink {
 public:
  explicit ParquetFileSink(std::string path);
  ~ParquetFileSink() override;
  arrow::Status Begin(const std::shared_ptr<arrow::Schema>& schema) override;
  arrow::Status Write(const std::shared_ptr<arrow::Table>& rows) override;
  arrow::Status Close() override;

 private:
  struct State;
  std::string path_;
  std::string partial_;
  std::unique_ptr<State> state_;
  bool wrote_rows_ = false;
  bool closed_ = false;
};

/// Writes CSV (a header line, then the rows) as the output arrives.
class CsvFileSink final : public FileSink {
 public:
  explicit CsvFileSink(std::string path);
  ~CsvFileSink() override;
  arrow::Status Begin(const std::shared_ptr<arrow::Schema>& schema) override;
  arrow::Status Write(const std::shared_ptr<arrow::Table>& rows) override;
  arrow::Status Close() override;

 private:
  struct State;
  std::string path_;
  std::string partial_;
  std::unique_ptr<State> state_;
  bool closed_ = false;
};

/// A ParquetFileSink or CsvFileSink by the name's ending (.parquet, .csv);
/// another name is Invalid ("'PATH' must end in .parquet or .csv"). Writes nothing yet.
arrow::Result<std::unique_ptr<FileSink>> OpenFileSink(const std::string& path);

/// True when `path` ends in .parquet or .csv (the files above read and write).
bool IsTableFileName(const std::string& path);

// ---- saved datasets ------------------------------------------------------------

struct DatasetManifest {
  std::string name;
  std::string table_uri;       // the saved rows (a Delta table under datasets/)
  int64_t table_version = -1;  // its Delta version
  int64_t created_at_ms = 0;
  int64_t registry_version = 0;
  std::vector<std::string> feature_refs;
  std::string feature_service;
  bool full_feature_names = false;
  std::optional<int64_t> as_of_ms;
  std::string timestamp_column;
  std::vector<std::string> entity_columns;
  std::string entity_hash;  // content hash of the entity table (hex)
  /// How entity_hash was computed: 2 = EntityHasher (streamed, in blocks of
  /// rows); 1 = ContentHash of the whole table (manifests written before 2).
  int entity_hash_version = 2;
  int64_t rows = 0;
  std::vector<SourceRead> sources;
  /// The output's exact Arrow schema (types, time zones, nullability, field
  /// and schema metadata) as the retrieval produced it; the Delta table stores
  /// Delta's types (e.g. timestamps as UTC microseconds), and ReadDataset and
  /// RecreateDataset give the rows back in this schema. In the JSON:
  /// "arrow_schema", the Arrow IPC schema message in base64. Null in manifests
  /// written before it (their rows come back in the stored types).
  std::shared_ptr<arrow::Schema> schema;
};

/// Saves a retrieval's output as datasets/NAME while it is streamed: a sink
/// whose pieces become the dataset's Delta data files as they arrive, so the
/// output is never held whole. Finish() commits them as one Delta version,
/// hashes the stored entity columns (reading them back a row group at a time)
/// and writes datasets/NAME.manifest.json. Without Finish() no dataset exists
/// and the files written are deleted.
class DatasetWriter : public HistoricalSink {
 public:
  /// Checks the name and that no dataset of that name exists; writes nothing.
  /// Keeps what the manifest needs from `request` (not its entity rows).
  static arrow::Result<std::unique_ptr<DatasetWriter>> Open(const repo::FeatureRepository& repo,
                                                            const std::string& name,
                                                            const HistoricalRequest& request);
  ~DatasetWriter() override;
  arrow::Status Begin(const std::shared_ptr<arrow::Schema>& schema) override;
  arrow::Status Write(const std::shared_ptr<arrow::Table>& rows) override;
  /// Call after GetHistoricalFeatures returned `result` into this sink.
  arrow::Result<DatasetManifest> Finish(const HistoricalResult& result);

  struct Impl;

 private:
  explicit DatasetWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Writes `result` (an in-memory retrieval) to datasets/NAME (a new Delta
/// table; an existing name is an error) and its manifest to
/// datasets/NAME.manifest.json: DatasetWriter with the whole table as one piece.
arrow::Result<DatasetManifest> SaveDataset(const repo::FeatureRepository& repo,
                                           const std::string& name,
                                           const HistoricalRequest& request,
                                           const HistoricalResult& result);

/// Where the rows of dataset NAME go (the Delta table datasets/NAME in the
/// offline store), after DatasetWriter::Open's checks (a valid name, no dataset
/// of that name, no stray files there); writes nothing. For an engine that
/// writes the rows itself (the Spark engine's executors) before RegisterDataset.
arrow::Result<std::string> DatasetTableUri(const repo::FeatureRepository& repo,
                                           const std::string& name);

/// Makes the Delta table another engine wrote at DatasetTableUri(repo, NAME)
/// dataset NAME, as DatasetWriter::Finish would: the table's latest version,
/// `result.schema` as the exact schema (its columns must be the table's, in
/// order), `result.rows`, the hash of the stored entity columns (read back a
/// row group at a time) and the manifest, so ReadDataset and RecreateDataset
/// treat it as any saved dataset. Errors: no table there, a manifest already
/// there (kTableAlreadyExists), columns that differ from the schema.
arrow::Result<DatasetManifest> RegisterDataset(const repo::FeatureRepository& repo,
                                               const std::string& name,
                                               const HistoricalRequest& request,
                                               const HistoricalResult& result);

/// The manifest as the JSON written beside the dataset.
std::string ManifestToJson(const DatasetManifest& manifest);

arrow::Result<std::vector<DatasetManifest>> ListDatasets(const repo::FeatureRepository& repo);
arrow::Result<DatasetManifest> LoadDatasetManifest(const repo::FeatureRepository& repo,
                                                   const std::string& name);

/// The saved rows of dataset NAME, read a row group at a time, in the exact
/// schema the retrieval produced (DatasetManifest::schema). Errors: no such
/// dataset (kObjectNotFound).
arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> ReadDataset(
    const repo::FeatureRepository& repo, const std::string& name);

struct RecreateResult {
  std::shared_ptr<arrow::Table> table;  // the rebuilt rows (null when streamed to a sink)
  int64_t rows = 0;                     // rows rebuilt
  bool identical = false;               // equal to the saved rows, value for value
  std::string difference;               // when not identical: the first difference
};

/// Rebuilds a saved dataset from its manifest: the same entity rows, registry
/// version and source Delta versions, and compares it with the saved rows.
/// Fails clearly when a pinned version's files were removed by VACUUM.
arrow::Result<RecreateResult> RecreateDataset(const repo::FeatureRepository& repo,
                                              const std::string& name);

/// The same, streamed: the saved entity rows are read back a row group at a
/// time as the retrieval's entity input, each rebuilt piece is compared with the
/// saved rows at the same positions and then handed to `sink` (may be null), so
/// memory stays within `memory_budget_bytes` (0 = the default budget) as in the
/// streaming GetHistoricalFeatures.
arrow::Result<RecreateResult> RecreateDataset(const repo::FeatureRepository& repo,
                                              const std::string& name, HistoricalSink* sink,
                                              int64_t memory_budget_bytes = 0);

/// A 128-bit content hash (hex) of a table's schema and values; independent of
/// chunking. (entity_hash_version 1; holds the table whole.)
arrow::Result<std::string> ContentHash(const arrow::Table& table);

/// The streamed content hash of entity_hash_version 2: a 128-bit hash (hex) of
/// a schema and the rows handed to Add, independent of how they are chunked
/// (rows are hashed in blocks of a fixed row count). Holds at most one block.
class EntityHasher {
 public:
  explicit EntityHasher(std::shared_ptr<arrow::Schema> schema);
  ~EntityHasher();
  arrow::Status Add(const std::shared_ptr<arrow::RecordBatch>& rows);
  /// The hash of everything added; call once.
  arrow::Result<std::string> Finish();

 private:
  arrow::Status HashBlock(int64_t rows);

  struct Pending;  // rows not hashed yet (less than a block)

  std::shared_ptr<arrow::Schema> schema_;
  std::unique_ptr<Pending> pending_;
  uint64_t a_ = 0;
  uint64_t b_ = 0;
};

}  // namespace stratalake::retrieval
