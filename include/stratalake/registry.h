// The feature registry: definitions (entities, sources, feature views, feature
// services), their validation, the plan/apply cycle and the versioned store.
//
// Definitions are written as YAML in a feature repository (see repo.h and
// docs/feature-repository.md); this header holds their in-memory model, which
// is the same whether it was parsed from files (locations filled in) or loaded
// from a registry version (locations empty).
//
// Every applied change becomes one registry version; every object keeps the
// full history of its canonical JSON, so any past version can be loaded again
// exactly (training datasets record the version they were built from).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <arrow/result.h>
#include <arrow/type_fwd.h>

#include "stratalake/clock.h"

namespace stratalake::registry {

class RegistryStore;

/// Where a definition came from: "definitions/views.yaml:12:5".
struct SourceLocation {
  std::string file;  // relative to the repository root
  int line = 0;      // 1-based; 0 = unknown
  int column = 0;    // 1-based; 0 = unknown
  std::string ToString() const;
};

using Tags = std::map<std::string, std::string>;

/// A typed column: an entity join key, a declared source column or a feature.
struct Field {
  std::string name;
  std::shared_ptr<arrow::DataType> type;
  bool nullable = true;
  std::string description;
  Tags tags;
  SourceLocation loc;
};

struct Entity {
  std::string name;
  std::vector<Field> join_keys;
  std::string description;
  std::string owner;
  Tags tags;
  SourceLocation loc;
};

enum class SourceType { kDelta, kParquet, kPush, kKafka };
const char* SourceTypeName(SourceType type);  // "delta", "parquet", "push", "kafka"

struct Check {
  std::string name;        // optional
  std::string expression;  // stratalake predicate, e.g. "amount >= 0"
};

/// Where a kafka source's events come from (`stratalake stream`, docs/streaming.md).
struct KafkaOptions {
  /// Bootstrap servers, "host:port[,host:port]"; ${ENV_VAR} is expanded when the
  /// stream starts, so one definition serves every environment.
  std::string brokers;
  std::string topic;
  /// "json": one JSON object per message; "avro": one Avro binary datum of the
  /// record schema below; "avro-confluent": the same after Confluent's 5-byte
  /// header (magic byte 0, schema id), as Confluent's serializers write it.
  std::string format = "json";
  /// The Avro record schema (its JSON text) of an avro format, given in the
  /// definition...
  std::string avro_schema;
  /// ...or a file holding it (e.g. exported from a schema registry), relative
  /// to the repository root; read when the stream starts.
  std::string avro_schema_file;
  /// Declared column -> JSON field of the message, for columns whose field has
  /// another name (default: the column's own name).
  std::map<std::string, std::string> columns;
  /// Events whose time is more than this before the newest event time seen in
  /// their partition are quarantined as late (0: every out-of-order event is late).
  int64_t allowed_lateness_seconds = 0;
};

struct Source {
  std::string name;
  SourceType type = SourceType::kDelta;
  /// delta/push/kafka: the Delta table (kafka: the bronze table the stream appends
  /// to), relative to the offline store root (e.g.
  /// "bronze/orders") or an absolute URI; parquet: a file or folder.
  std::string path;
  std::string timestamp_field;
  std::string created_timestamp_field;               // optional
  std::map<std::string, std::string> field_mapping;  // source column -> name used by views
  std::vector<Field> schema;                         // declared columns (required for push)
  std::vector<Check> checks;                         // enforced by ingestion
  std::vector<std::string> partition_by;             // used when ingestion creates the table
  KafkaOptions kafka;                                // kafka sources only
  std::string description;
  std::string owner;
  Tags tags;
  SourceLocation loc;
};

/// What a window aggregation computes (docs/windows.md).
enum class AggregationFunction {
  kSum,
  kCount,
  kMean,
  kMin,
  kMax,
  kStddev,
  kLast,
  kLastK,
  kCountDistinct,
  kPercentile
};
/// "sum", "count", "mean", "min", "max", "stddev", "last", "last_k",
/// "count_distinct", "percentile".
const char* AggregationFunctionName(AggregationFunction f);
/// The names above (case-insensitive; "avg" = mean, "std" = stddev); others
/// are Invalid, naming the known ones.
arrow::Result<AggregationFunction> ParseAggregationFunction(const std::string& text);

/// One window aggregation of a feature view: `function` over the values of
/// source column `column` of the same entity key whose event time lies in
/// (t - window, t] (t excluded at the old end, included at the new end), for
/// the rows where `filter` holds. Its result is the feature `name`, typed by
/// AggregationType. docs/windows.md gives the semantics.
struct Aggregation {
  std::string name;  // the feature it produces
  AggregationFunction function = AggregationFunction::kSum;
  std::string column;          // source column (after field_mapping)
  int64_t window_seconds = 0;  // > 0
  int32_t k = 0;               // last_k: how many values (1..1000)
  double percentile = 0;       // percentile: the quantile, in [0, 1]
  std::string filter;          // a predicate (expression.h) over source columns; "" = all rows
  SourceLocation loc;
};

/// The feature type of an aggregation's result: int64 for count and
/// count_distinct, list<float64> for last_k, float64 otherwise.
std::shared_ptr<arrow::DataType> AggregationType(const Aggregation& a);

struct FeatureView {
  std::string name;
  std::vector<std::string> entities;
  std::string source;
  /// Plain views: the source columns served. Window views: one feature per
  /// aggregation (same name, AggregationType), derived by the loader.
  std::vector<Field> features;
  /// Window aggregations (docs/windows.md); empty for a plain view. A view has
  /// either plain features or aggregations, never both.
  std::vector<Aggregation> aggregations;
  int64_t ttl_seconds = 0;  // 0 = unlimited
  bool online = true;
  std::string owner;
  std::string description;
  Tags tags;
  SourceLocation loc;
};

/// One view's contribution to a feature service.
struct FeatureServiceItem {
  std::string view;
  std::vector<std::string> features;                // empty = every feature of the view
  std::string alias;                                // replaces the view name in output names
  std::map<std::string, std::string> join_key_map;  // view join key -> entity column
  SourceLocation loc;
};

struct FeatureService {
  std::string name;
  std::vector<FeatureServiceItem> items;
  std::vector<std::string> includes;  // other feature services, expanded in order
  std::string description;
  std::string owner;
  Tags tags;
  SourceLocation loc;
};

/// How a transformation's result lands in its output table (docs/pipelines.md).
enum class TransformMode {
  kFullRefresh,  // replace the table's rows with the query's result
  kAppend,       // append the query's result
  kMerge,        // upsert the result on `keys` (latest row per key by `order_by`)
};
const char* TransformModeName(TransformMode mode);  // "full_refresh", "append", "merge"

/// What an incremental (append or merge) run does when rows its input held at
/// the last run were updated or deleted since (docs/pipelines.md).
enum class OnChange {
  kFullRefresh,  // recompute the whole table from the whole input (default)
  kKeys,         // merge: recompute the keys the changed rows had or have
  kPartitions,   // recompute the output partitions the changed input partitions map to
  kFail,         // refuse, saying to run with --full-refresh
};
const char* OnChangeName(OnChange on_change);  // "full_refresh", "keys", "partitions", "fail"

/// A SQL transformation: a query over the repository's Delta tables (named
/// `layer.table`, e.g. bronze.orders) materialized into one output table.
/// Run by the transform layer (stratalake/transform.h) from the definition
/// files; `plan`/`apply` version them in the registry like other objects
/// (their canonical JSON holds what the files say: not `inputs` or
/// `code_fingerprint`, which only the SDK's Python transformations carry).
struct Transformation {
  std::string name;
  std::string sql;
  /// The output table, relative to the offline store root ("silver/orders").
  std::string output;
  TransformMode mode = TransformMode::kFullRefresh;
  std::vector<std::string> keys;          // merge: key columns
  std::string order_by;                   // merge: event time; the latest row per key wins
  std::vector<Field> schema;              // declared output columns (optional)
  std::vector<std::string> partition_by;  // used when a run creates the table
  OnChange on_change = OnChange::kFullRefresh;
  /// on_change keys / partitions over several tables: for an input table
  /// ("bronze/customers"), its columns that hold the output's keys (or its
  /// partition_by columns), in the same order; empty: its rows map to none (a
  /// change of it recomputes the whole table). Inputs not listed map by name.
  struct InputKeys {
    std::string table;
    std::vector<std::string> columns;
    SourceLocation loc;
  };
  std::vector<InputKeys> input_keys;
  /// Tables read, for transformations without SQL (Python functions); SQL
  /// transformations read the tables their SQL names.
  std::vector<std::string> inputs;
  /// A Python transformation of the definition files (`python: FILE.py:FUNCTION`,
  /// docs/pipelines.md): the file, relative to the repository root, and the
  /// top-level function it defines; empty for SQL ones. The function is imported
  /// only when a run needs it.
  std::string python_file;
  std::string python_function;
  /// How the function gets its inputs: "pandas" (default), "polars" or "arrow".
  std::string kind;
  /// The function's source text (its `def` line to the end of its body), read by
  /// ResolvePythonSources. It is what the registry versions (plan shows its line
  /// diff) and what the run record's fingerprint covers, with `kind`.
  std::string python_source;
  /// Python transformations: a fingerprint of the function (its code), which
  /// stands in for the SQL in the run record.
  std::string code_fingerprint;
  std::string description;
  std::string owner;
  Tags tags;
  SourceLocation loc;      // the transformation's entry
  SourceLocation sql_loc;  // its `sql` value (or `python` value)
};

/// Request data: fields a caller passes with every request, for on-demand
/// feature views (docs/feature-repository.md). Online they arrive beside the
/// join keys (Feast's `entities`); get-historical reads them from the entity
/// table's columns of the same names. Feast: a RequestSource.
struct RequestSource {
  std::string name;
  std::vector<Field> schema;  // the fields; values are cast to these types
  std::string description;
  std::string owner;
  Tags tags;
  SourceLocation loc;
};

/// One feature of an on-demand view: its name and type, and the expression
/// (stratalake/expression.h) that computes it from the view's inputs.
struct OnDemandFeature {
  Field field;                    // the result is cast (safely) to field.type
  std::string expression;         // e.g. "amount / nullif(avg_amount_30d, 0)"
  SourceLocation expression_loc;  // where `expression` is written
};

/// A feature view computed at request time, identically online and in
/// get-historical, from request data and other views' features. Feast: an
/// OnDemandFeatureView. See stratalake/on_demand.h for how it is evaluated.
struct OnDemandFeatureView {
  std::string name;
  /// Request sources and feature views (stored or on-demand) whose fields
  /// the expressions may read, by their bare names (a request field `amount`,
  /// a feature `avg_amount_30d`).
  std::vector<std::string> sources;
  std::vector<OnDemandFeature> features;
  std::string description;
  std::string owner;
  Tags tags;
  SourceLocation loc;
};

/// A complete set of definitions (a repository's files, or a registry version).
struct Definitions {
  std::vector<Entity> entities;
  std::vector<Source> sources;
  std::vector<FeatureView> feature_views;
  std::vector<FeatureService> feature_services;
  std::vector<Transformation> transformations;
  std::vector<RequestSource> request_sources;
  std::vector<OnDemandFeatureView> on_demand_feature_views;

  const Entity* FindEntity(const std::string& name) const;
  const Source* FindSource(const std::string& name) const;
  const FeatureView* FindFeatureView(const std::string& name) const;
  const FeatureService* FindFeatureService(const std::string& name) const;
  const Transformation* FindTransformation(const std::string& name) const;
  const RequestSource* FindRequestSource(const std::string& name) const;
  const OnDemandFeatureView* FindOnDemandFeatureView(const std::string& name) const;
};

/// The source text of the top-level function `function` in Python source
/// `text`: from its `def` line (column 0) to the last line of its body
/// (trailing blank and comment lines dropped); decorators are not included.
/// The last definition wins, as in Python. NotFound when the text defines no
/// top-level `def function(`. A plain text scan (no Python needed).
arrow::Result<std::string> PythonFunctionSource(const std::string& text,
                                                const std::string& function);

/// For each transformation of `defs` with a `python_file`: reads the file
/// (relative to `root`) and sets `python_source` to the function's source.
/// A file that is missing or outside the repository, or that defines no such
/// function, adds a problem at the `python` value's file:line to `problems`.
void ResolvePythonSources(const std::string& root, Definitions* defs,
                          std::vector<std::string>* problems);

// ---- types and durations ----------------------------------------------------

/// Parses a feature type: int8 int16 int32 int64 float32 float64 bool string
/// binary date timestamp (microseconds, UTC) decimal(P,S) list<T>; also the
/// aliases int, long, float, double, boolean, Int64, Float32, String,
/// UnixTimestamp (case-insensitive).
arrow::Result<std::shared_ptr<arrow::DataType>> ParseFeatureType(const std::string& text);
/// The canonical name ParseFeatureType accepts back, e.g. "int64", "list<float32>".
std::string FeatureTypeName(const arrow::DataType& type);

/// "7d", "12h", "30m", "45s", "1w", "0" (also "1d12h") -> seconds.
arrow::Result<int64_t> ParseDuration(const std::string& text);
/// Seconds -> the shortest exact form ParseDuration accepts ("2d", "90m", "0").
std::string FormatDuration(int64_t seconds);

// ---- canonical JSON -----------------------------------------------------------

enum class ObjectKind {
  kEntity,
  kSource,
  kFeatureView,
  kFeatureService,
  kRequestSource,        // "request_source"
  kOnDemandFeatureView,  // "on_demand_feature_view"
  kTransformation,       // "transformation"
};
const char* ObjectKindName(ObjectKind kind);  // "entity", "source", "feature_view", ...
/// Accepts the kind names and their plurals / dashed forms ("feature-views").
arrow::Result<ObjectKind> ParseObjectKind(const std::string& text);

/// Canonical JSON of one object: fixed key order, no locations. Two objects
/// are the same version exactly when their canonical JSON is equal.
std::string ToCanonicalJson(const Entity& e);
std::string ToCanonicalJson(const Source& s);
std::string ToCanonicalJson(const FeatureView& v);
std::string ToCanonicalJson(const FeatureService& s);
std::string ToCanonicalJson(const RequestSource& s);
std::string ToCanonicalJson(const OnDemandFeatureView& v);
std::string ToCanonicalJson(const Transformation& t);

/// Adds the object encoded by ToCanonicalJson to `defs`.
arrow::Status AddFromCanonicalJson(ObjectKind kind, const std::string& json, Definitions* defs);

/// Flattens canonical JSON into path -> value text ("features[orders_7d].type"
/// -> "int64"); used for field-by-field plans.
std::map<std::string, std::string> FlattenJson(const std::string& json);

// ---- validation -------------------------------------------------------------

/// Returns the schema of a source's data (after field_mapping), or nullptr when
/// it cannot be known yet (table not created and no declared schema).
using SourceSchemaResolver =
    std::function<arrow::Result<std::shared_ptr<arrow::Schema>>(const Source&)>;

struct ValidationOptions {
  std::string default_timestamp_field;  // used when a source names none
  SourceSchemaResolver resolve_schema;  // may be empty: skip data-schema checks
};

/// Checks everything and reports ALL problems at once as ErrorKind::
/// kDefinitionError: first line "N problem(s) in the feature definitions",
/// then one line per problem: "FILE:LINE:COL: KIND 'NAME': what is wrong; what
/// to do". Checks: names (identifiers, no "__", not starting with "_", not
/// reserved), duplicates (naming both places), unknown entities / sources /
/// views / features, feature columns missing from the source or of another
/// type, join keys missing from the source, timestamp fields missing or not
/// timestamps, include cycles between feature services, and invalid checks.
arrow::Status Validate(const Definitions& defs, const ValidationOptions& options);

// ---- feature requests ----------------------------------------------------------

/// One feature view's part of a request for features (training set or online).
struct ViewRequest {
  const FeatureView* view = nullptr;           // points into the Definitions resolved against
  std::string label;                           // alias or view name (prefix of full feature names)
  std::vector<std::string> features;           // in request order
  std::map<std::string, std::string> key_map;  // view join key -> entity column
  /// Per feature: its place among all the request's features (0, 1, ...), in
  /// the order they were asked for (a feature service: its items' declared
  /// order, then its includes'); a feature asked for twice keeps its first place.
  std::vector<size_t> positions;
};

/// Resolves feature references ("view:feature", or "view" for all its
/// features) or a feature service (its items, then its includes, each service
/// once) into one ViewRequest per (view, label, key map), in first-use order;
/// ViewRequest::positions gives each feature's place in request order.
/// Exactly one of `features` and `feature_service` must be given. Unknown
/// views, features and services are kObjectNotFound, naming what exists.
arrow::Result<std::vector<ViewRequest>> ResolveFeatureRequest(
    const Definitions& defs, const std::vector<std::string>& features,
    const std::string& feature_service);

/// The output names of resolved views' features, one list per ViewRequest in
/// its feature order: `label__feature` with full_feature_names, else the
/// feature's name. `taken` holds names already used (output name -> what holds
/// it, e.g. "entity column 'id'"). Two holders of one name are a
/// kDefinitionError naming both and ending with `advice` (how the caller's
/// interface tells them apart).
arrow::Result<std::vector<std::vector<std::string>>> FeatureOutputNames(
    const std::vector<ViewRequest>& views, bool full_feature_names,
    std::map<std::string, std::string> taken, const std::string& advice);

// ---- plans ------------------------------------------------------------------

enum class CompatibilityPolicy { kBackward, kForward, kFull, kNone };
const char* CompatibilityPolicyName(CompatibilityPolicy p);
arrow::Result<CompatibilityPolicy> ParseCompatibilityPolicy(const std::string& text);

/// How a column's type changes: widening is lossless (int32 -> int64, float32 ->
/// float64, small ints -> float64); kOther is any change that may lose values.
enum class TypeChange { kSame, kWiden, kNarrow, kOther };
TypeChange ClassifyTypeChange(const arrow::DataType& from, const arrow::DataType& to);

enum class ChangeType { kAdd, kModify, kRemove };
const char* ChangeTypeName(ChangeType t);  // "add", "modify", "remove"

struct FieldChange {
  std::string path;  // e.g. "features[spend_7d].type"
  std::optional<std::string> before;
  std::optional<std::string> after;
};

struct ObjectChange {
  ObjectKind kind;
  std::string name;
  ChangeType type;
  int64_t from_version = 0;  // object version before (0 when added)
  std::vector<FieldChange> fields;
  std::string spec;  // new canonical JSON (empty when removed)
  SourceLocation loc;
};

struct Plan {
  int64_t base_version = 0;  // registry version the plan was computed against
  std::vector<ObjectChange> changes;
  /// Changes the compatibility policy refuses, one message each (why and what to do).
  std::vector<std::string> incompatibilities;
  bool empty() const { return changes.empty(); }
  /// Terraform-like text: "+ feature_view customer_stats", "~ ...", "- ...".
  std::string ToString() const;
};

// ---- the registry -------------------------------------------------------------

/// An immutable, fully parsed registry version.
struct RegistryState {
  int64_t version = 0;
  Definitions defs;
  /// "kind/name" -> object version.
  std::map<std::string, int64_t> object_versions;
  int64_t ObjectVersion(ObjectKind kind, const std::string& name) const;
};

struct ApplyResult {
  int64_t version = 0;  // the new registry version (or the head when nothing changed)
  bool changed = false;
  Plan plan;
};

struct ObjectVersionInfo {
  int64_t object_version = 0;
  int64_t registry_version = 0;
  int64_t committed_at_ms = 0;
  std::string author;
  bool deleted = false;
  std::string spec;
};

class Registry {
 public:
  /// `uri`: a SQLite file path (or sqlite://PATH) or a postgresql:// URL.
  static arrow::Result<std::unique_ptr<Registry>> Open(const std::string& uri,
                                                       std::shared_ptr<Clock> clock = nullptr);
  /// A registry over a store the caller opened (registry/store.h): for tests
  /// and embedders with a store of their own.
  static std::unique_ptr<Registry> FromStore(std::unique_ptr<RegistryStore> store,
                                             std::shared_ptr<Clock> clock = nullptr);
  ~Registry();

  arrow::Result<int64_t> HeadVersion();
  /// The registry at `version` (default: head). kVersionNotFound if out of range.
  arrow::Result<std::shared_ptr<const RegistryState>> Load(
      std::optional<int64_t> version = std::nullopt);

  /// What applying `desired` to the head would change; checks the policy.
  arrow::Result<Plan> PlanChanges(const Definitions& desired, CompatibilityPolicy policy);

  /// Plans and commits as one registry version. Refuses incompatible changes
  /// (kIncompatibleChange). When another process commits first, re-plans
  /// against the new head: if nothing is left to change, succeeds unchanged;
  /// otherwise fails with kRegistryConflict (nothing written) so the user can
  /// review the other change.
  arrow::Result<ApplyResult> Apply(const Definitions& desired, CompatibilityPolicy policy,
                                   const std::string& author, const std::string& message);

  arrow::Result<std::vector<ObjectVersionInfo>> History(ObjectKind kind, const std::string& name);
  struct VersionInfo {
    int64_t version = 0;
    int64_t committed_at_ms = 0;
    std::string author;
    std::string message;
    int32_t num_changes = 0;
  };
  arrow::Result<std::vector<VersionInfo>> Versions();

  /// Small overwrite-in-place state (watermarks, ...).
  arrow::Status PutState(const std::string& key, const std::string& value);
  arrow::Result<std::optional<std::string>> GetState(const std::string& key);

  std::string Describe() const;

 private:
  Registry(std::unique_ptr<RegistryStore> store, std::shared_ptr<Clock> clock);
  std::unique_ptr<RegistryStore> store_;
  std::shared_ptr<Clock> clock_;
};

/// For long-running processes: holds the parsed head in memory and re-reads it
/// only when the head version changed. Thread-safe.
///
/// Without a refresh thread, Get checks the head (one cheap query) at most once
/// per `min_check_interval_ms`, on the caller's thread. With one
/// (StartRefreshThread), Get never does I/O after the first load: a feature
/// server's requests then never wait on the registry's database.
///
/// A failed check (the database unreachable or damaged) keeps the held state:
/// Get goes on returning it, failures() counts the failures and last_error()
/// says what went wrong, until a later check succeeds. Only the first load's
/// failure is returned by Get, when there is nothing to hold yet.
class RegistryCache {
 public:
  RegistryCache(std::shared_ptr<Registry> registry, std::shared_ptr<Clock> clock,
                int64_t min_check_interval_ms = 1000);
  /// Stops and joins the refresh thread, if one runs.
  ~RegistryCache();
  RegistryCache(const RegistryCache&) = delete;
  RegistryCache& operator=(const RegistryCache&) = delete;

  arrow::Result<std::shared_ptr<const RegistryState>> Get();
  /// Checks the head now, whatever the interval, and loads it if it changed.
  /// Returns the check's error (the held state is kept).
  arrow::Status Refresh();
  /// Starts a thread that calls Refresh every `min_check_interval_ms` of real
  /// time. Call after a first successful Get. Idempotent.
  void StartRefreshThread();

  /// Number of times the registry was parsed (for tests and metrics).
  int64_t loads() const;
  /// Number of failed checks so far.
  int64_t failures() const;
  /// The last check's error message; empty when the last check succeeded.
  std::string last_error() const;

 private:
  arrow::Status Check(bool only_if_due);

  std::shared_ptr<Registry> registry_;
  std::shared_ptr<Clock> clock_;
  int64_t min_check_interval_ms_;
  std::mutex check_mu_;    // one check at a time; held across the registry's I/O
  mutable std::mutex mu_;  // guards the fields below; never held across I/O
  std::shared_ptr<const RegistryState> state_;
  int64_t last_check_ms_ = 0;
  int64_t loads_ = 0;
  int64_t failures_ = 0;
  std::string last_error_;
  bool refreshing_in_background_ = false;
  // The refresh thread and how it is told to stop.
  std::thread thread_;
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
};

}  // namespace stratalake::registry
