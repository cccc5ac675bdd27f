// Transformations: planning (dependency order, staleness) and runs (one Delta
// commit each, recording the input versions read).
#include <algorithm>
#include <cctype>
#include <functional>
#include <map>
#include <optional>
#include <set>

#include <arrow/api.h>
#include <arrow/compute/api.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "storage/table_read.h"
#include "stratalake/delta.h"
#include "stratalake/status.h"
#include "stratalake/transform.h"

namespace stratalake::transform {

namespace {

using registry::Definitions;
using registry::Transformation;
using registry::TransformMode;

constexpr const char* kMetadataKey = "stratalake_pipeline";

std::string AppId(const std::string& name) { return "stratalake.pipeline/" + name; }

// The run records' fingerprint version: 2 covers input_keys; records without
// one (version 1) were written before it did.
constexpr int kQueryVersion = 2;

// What decides a result besides the inputs: the query and how it lands; from
// version 2, input_keys (which decides what an incremental run recomputes). Only
// declared input_keys count, so a transformation without them has one
// fingerprint in every version.
std::string Fingerprint(const Transformation& t, int version = kQueryVersion) {
  std::string text = t.sql + '\x1f' + registry::TransformModeName(t.mode) + '\x1f' + t.order_by;
  for (const auto& k : t.keys) text += '\x1f' + k;
  if (!t.code_fingerprint.empty()) text += "\x1f" + t.code_fingerprint;
  if (version >= 2 && !t.input_keys.empty()) {
    std::map<std::string, std::vector<std::string>> by_table;  // the order written does not count
    for (const auto& ik : t.input_keys) by_table[ik.table] = ik.columns;
    text += "\x1finput_keys";
    for (const auto& [table, columns] : by_table) {
      text += '\x1f' + table + '\x1e';
      for (const auto& c : columns) text += c + '\x1d';
    }
  }
  if (!t.python_file.empty()) text += "\x1fpython\x1f" + t.kind + '\x1f' + t.python_source;
  uint64_t h = 1469598103934665603ull;  // FNV-1a 64
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  static const char* kHex = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, h >>= 4) out[i] = kHex[h & 15];
  return out;
}

struct RunRecord {
  std::string fingerprint;
  int query_version = kQueryVersion;  // of `fingerprint`
  std::map<std::string, int64_t> inputs;
  std::string read = "all";              // "all", "new_rows", "keys" or "partitions"
  std::map<std::string, int64_t> since;  // incremental: the version each input was read from
};

std::string RecordJson(const std::string& name, const RunRecord& r) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  auto versions = [&w](const std::map<std::string, int64_t>& m) {
    w.StartObject();
    for (const auto& [path, v] : m) {
      w.Key(path.c_str());
      w.Int64(v);
    }
    w.EndObject();
  };
  w.StartObject();
  w.Key(kMetadataKey);
  w.StartObject();
  w.Key("transformation");
  w.String(name.c_str());
  w.Key("query");
  w.String(r.fingerprint.c_str());
  w.Key("query_version");
  w.Int(r.query_version);
  w.Key("read");
  w.String(r.read.c_str());
  if (!r.since.empty()) {
    w.Key("since");
    versions(r.since);
  }
  w.Key("inputs");
  versions(r.inputs);
  w.EndObject();
  w.EndObject();
  return buf.GetString();
}

// The run record in a commit's userMetadata, if it holds one.
std::optional<std::pair<std::string, RunRecord>> ParseRecord(const std::string& user_metadata) {
  rapidjson::Document doc;
  doc.Parse(user_metadata.c_str());
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember(kMetadataKey)) return std::nullopt;
  const auto& m = doc[kMetadataKey];
  if (!m.IsObject() || !m.HasMember("transformation") || !m["transformation"].IsString()) {
    return std::nullopt;
  }
  RunRecord r;
  if (m.HasMember("query") && m["query"].IsString()) r.fingerprint = m["query"].GetString();
  r.query_version =
      m.HasMember("query_version") && m["query_version"].IsInt() ? m["query_version"].GetInt() : 1;
  auto versions = [&](const char* key, std::map<std::string, int64_t>* out) {
    if (!m.HasMember(key) || !m[key].IsObject()) return;
    for (auto it = m[key].MemberBegin(); it != m[key].MemberEnd(); ++it) {
      if (it->value.IsInt64()) (*out)[it->name.GetString()] = it->value.GetInt64();
    }
  };
  versions("inputs", &r.inputs);
  versions("since", &r.since);
  if (m.HasMember("read") && m["read"].IsString()) r.read = m["read"].GetString();
  return std::make_pair(std::string(m["transformation"].GetString()), std::move(r));
}

// The record of `name`'s latest run into `table`, if any.
arrow::Result<std::optional<RunRecord>> LastRun(const delta::DeltaTable& table,
                                                const std::string& name) {
  // History lists the newest commit first. The latest commit is usually the run's
  // own: read it alone first rather than every commit of the table (a cost that
  // would grow with the number of runs).
  for (int64_t limit : {int64_t{1}, int64_t{0}}) {
    ARROW_ASSIGN_OR_RAISE(auto history, table.History(limit));
    for (const auto& c : history) {
      if (!c.user_metadata) continue;
      auto rec = ParseRecord(*c.user_metadata);
      if (rec && rec->first == name) return rec->second;
    }
    if (limit > 0 && static_cast<int64_t>(history.size()) < limit) break;  // no more commits
  }
  return std::nullopt;
}

// Whether `t`'s query is the one `last` recorded, fingerprinted as then: a
// record written before input_keys counted stays valid while the rest is unchanged.
bool SameQuery(const RunRecord& last, const Transformation& t) {
  return last.fingerprint == Fingerprint(t, last.query_version);
}

// The latest version of the table at `path`; nullopt when there is none.
arrow::Result<std::optional<int64_t>> LatestVersion(const repo::FeatureRepository& repo,
                                                    const std::string& path) {
  auto table = delta::DeltaTable::Open(repo.TableUri(path));
  if (!table.ok() && HasErrorKind(table.status(), ErrorKind::kTableNotFound)) {
    return std::nullopt;
  }
  ARROW_RETURN_NOT_OK(table.status());
  ARROW_ASSIGN_OR_RAISE(auto snap, (*table)->Latest());
  return snap->version();
}

arrow::Status DefinitionError(const registry::SourceLocation& loc, const std::string& msg) {
  return MakeError(arrow::StatusCode::Invalid, ErrorKind::kDefinitionError,
                   loc.ToString() + ": " + msg);
}

// "bronze.orders" and "bronze/orders" name the same table.
std::string TablePath(std::string name) {
  if (name.find('/') == std::string::npos) {
    const auto dot = name.find('.');
    if (dot != std::string::npos) name[dot] = '/';
  }
  return name;
}

// Every table `t` reads (its SQL's tables, or the declared inputs of a function),
// its own output included when it reads it.
std::vector<std::string> AllInputsOf(const Transformation& t) {
  if (!t.sql.empty()) return ReferencedTables(t.sql);
  std::set<std::string> in;
  for (const auto& x : t.inputs) in.insert(TablePath(x));
  return {in.begin(), in.end()};
}

std::vector<std::string> InputsOf(const Transformation& t) {
  std::vector<std::string> in;
  for (auto& p : AllInputsOf(t)) {
    if (p != t.output) in.push_back(std::move(p));  // its own output is not a dependency
  }
  return in;
}

std::string JoinNames(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// The selected transformations in dependency order (definition order among
// independent ones).
arrow::Result<std::vector<const Transformation*>> Order(const Definitions& defs,
                                                        const std::vector<std::string>& names) {
  std::map<std::string, const Transformation*> writer;  // output table -> transformation
  for (const auto& t : defs.transformations) {
    auto [it, fresh] = writer.emplace(t.output, &t);
    if (!fresh) {
      return DefinitionError(t.loc, "transformation '" + t.name + "' writes " + t.output +
                                        ", which transformation '" + it->second->name + "' (" +
                                        it->second->loc.ToString() +
                                        ") writes too; give each table one transformation");
    }
  }
  std::vector<const Transformation*> selected;
  if (names.empty()) {
    for (const auto& t : defs.transformations) selected.push_back(&t);
  } else {
    for (const auto& n : names) {
      const Transformation* t = defs.FindTransformation(n);
      if (!t) {
        std::vector<std::string> known;
        for (const auto& x : defs.transformations) known.push_back(x.name);
        return MakeError(arrow::StatusCode::KeyError, ErrorKind::kObjectNotFound,
                         "no transformation named '" + n +
                             "' (defined: " + (known.empty() ? "none" : JoinNames(known)) + ")");
      }
      if (std::find(selected.begin(), selected.end(), t) == selected.end()) selected.push_back(t);
    }
  }
  // Kahn's algorithm over the whole graph (a cycle is an error even when only part
  // of it is selected), then keep the selected ones.
  std::map<const Transformation*, std::vector<const Transformation*>> deps;
  for (const auto& t : defs.transformations) {
    for (const auto& in : InputsOf(t)) {
      auto it = writer.find(in);
      if (it != writer.end()) deps[&t].push_back(it->second);
    }
  }
  std::vector<const Transformation*> order;
  std::set<const Transformation*> done;
  while (order.size() < defs.transformations.size()) {
    bool progressed = false;
    for (const auto& t : defs.transformations) {
      if (done.count(&t)) continue;
      bool ready = true;
      for (const auto* d : deps[&t]) ready = ready && done.count(d);
      if (!ready) continue;
      done.insert(&t);
      order.push_back(&t);
      progressed = true;
    }
    if (!progressed) {
      std::string cycle;
      for (const auto& t : defs.transformations) {
        if (!done.count(&t)) {
          cycle += (cycle.empty() ? "" : ", ") + t.name + " (" + t.loc.ToString() + ")";
        }
      }
      return MakeError(arrow::StatusCode::Invalid, ErrorKind::kDefinitionError,
                       "transformations read each other's tables in a cycle: " + cycle +
                           "; a transformation may only read tables its upstream writes");
    }
  }
  std::vector<const Transformation*> out;
  for (const auto* t : order) {
    if (std::find(selected.begin(), selected.end(), t) != selected.end()) out.push_back(t);
  }
  return out;
}

// Why `t` would run (reason "" when up to date), and the PlannedRun::cause.
struct Staleness {
  std::string reason;
  std::string cause;
};

arrow::Result<Staleness> StaleReason(const repo::FeatureRepository& repo, const Transformation& t) {
  auto table = delta::DeltaTable::Open(repo.TableUri(t.output));
  if (!table.ok() && HasErrorKind(table.status(), ErrorKind::kTableNotFound)) {
    return Staleness{"never run", "never_run"};
  }
  ARROW_RETURN_NOT_OK(table.status());
  ARROW_ASSIGN_OR_RAISE(auto last, LastRun(**table, t.name));
  if (!last) return Staleness{"never run", "never_run"};
  if (!SameQuery(*last, t)) return Staleness{"query changed", "definition_changed"};
  for (const auto& in : InputsOf(t)) {
    ARROW_ASSIGN_OR_RAISE(auto now, LatestVersion(repo, in));
    if (!now) return Staleness{in + " does not exist yet", "input_missing"};
    auto it = last->inputs.find(in);
    if (it == last->inputs.end()) {
      return Staleness{in + " is read for the first time", "inputs_changed"};
    }
    if (it->second != *now) {
      return Staleness{
          in + " changed: version " + std::to_string(it->second) + " -> " + std::to_string(*now),
          "inputs_changed"};
    }
  }
  return Staleness{};
}

// Checks `result` against the declared schema and returns it with the declared
// column order and types (safe casts only).
arrow::Result<std::shared_ptr<arrow::Table>> ConformToDeclared(
    const Transformation& t, const std::shared_ptr<arrow::Table>& result) {
  if (t.schema.empty()) return result;
  const std::string what = "transformation '" + t.name + "'";
  std::vector<std::string> declared;
  for (const auto& f : t.schema) declared.push_back(f.name);
  for (const auto& f : result->schema()->fields()) {
    if (std::find(declared.begin(), declared.end(), f->name()) == declared.end()) {
      return DefinitionError(
          t.loc, what + ": the query returns column '" + f->name() +
                     "', which the declared schema lacks (declared: " + JoinNames(declared) +
                     "); declare it or leave it out of the SELECT");
    }
  }
  arrow::FieldVector fields;
  arrow::ChunkedArrayVector columns;
  for (const auto& f : t.schema) {
    auto col = result->GetColumnByName(f.name);
    if (!col) {
      return DefinitionError(f.loc, what + ": declared column '" + f.name +
                                        "' is not in the query's result (columns: " +
                                        JoinNames(result->ColumnNames()) + ")");
    }
    if (!col->type()->Equals(*f.type)) {
      auto cast = arrow::compute::Cast(col, f.type);
      if (!cast.ok()) {
        return DefinitionError(
            f.loc, what + ": column '" + f.name + "' is " + col->type()->ToString() +
                       " in the query's result but declared " + registry::FeatureTypeName(*f.type) +
                       " (" + cast.status().message() + "); cast it in the query or fix the type");
      }
      col = cast->chunked_array();
    }
    if (!f.nullable && col->null_count() > 0) {
      return DefinitionError(f.loc, what + ": column '" + f.name +
                                        "' is declared not nullable "
                                        "but the query returns " +
                                        std::to_string(col->null_count()) + " null(s)");
    }
    fields.push_back(arrow::field(f.name, f.type, f.nullable));
    columns.push_back(std::move(col));
  }
  return arrow::Table::Make(arrow::schema(fields), columns, result->num_rows());
}

std::string Quote(const std::string& name);

// The feature views that read `t`'s output table (through a source whose path is
// the table) must find their features in `schema` with types the repository's
// compatibility policy accepts, read as a change of each feature's type from
// the declared one to the produced one (registry.h, ClassifyTypeChange). Every
// problem is reported at once.
arrow::Status CheckFeatureViews(const repo::FeatureRepository& repo, const Definitions& defs,
                                const Transformation& t, const arrow::Schema& schema) {
  const auto policy = repo.config().compatibility;
  if (policy == registry::CompatibilityPolicy::kNone) return arrow::Status::OK();
  const std::string policy_name = registry::CompatibilityPolicyName(policy);
  std::vector<std::string> problems;
  for (const auto& source : defs.sources) {
    if (source.type == registry::SourceType::kParquet || TablePath(source.path) != t.output) {
      continue;
    }
    for (const auto& view : defs.feature_views) {
      if (view.source != source.name) continue;
      const std::string reader = "feature view '" + view.name + "' (" + view.loc.ToString() + ")";
      for (const auto& f : view.features) {
        std::string column = f.name;
        for (const auto& [from, to] : source.field_mapping) {
          if (to == f.name) column = from;
        }
        auto field = schema.GetFieldByName(column);
        if (!field) {
          problems.push_back(
              reader + " reads feature '" + f.name + "' from column '" + column +
              "', which the result lacks (columns: " + JoinNames(schema.field_names()) + ")");
          continue;
        }
        if (!f.type) continue;
        const auto change = registry::ClassifyTypeChange(*f.type, *field->type());
        const bool widen_refused = policy == registry::CompatibilityPolicy::kForward ||
                                   policy == registry::CompatibilityPolicy::kFull;
        const bool narrow_refused = policy == registry::CompatibilityPolicy::kBackward ||
                                    policy == registry::CompatibilityPolicy::kFull;
        if (change == registry::TypeChange::kOther ||
            (change == registry::TypeChange::kWiden && widen_refused) ||
            (change == registry::TypeChange::kNarrow && narrow_refused)) {
          problems.push_back(reader + " declares feature '" + f.name + "' as " +
                             registry::FeatureTypeName(*f.type) + " but the result's column '" +
                             column + "' is " + registry::FeatureTypeName(*field->type()) +
                             ", which the '" + policy_name + "' compatibility policy refuses");
        }
      }
    }
  }
  if (problems.empty()) return arrow::Status::OK();
  std::string msg = "transformation '" + t.name +
                    "': its result does not match the feature views "
                    "that read " +
                    t.output + ":";
  for (const auto& p : problems) msg += "\n  " + p;
  msg +=
      "\ncast the columns in the query (or declare them in its schema), or change the features' "
      "types";
  return DefinitionError(t.loc, msg);
}

// QUALIFY keeping the latest row per key by order_by (a merge's deduplication).
std::string DedupeClause(const Transformation& t) {
  std::string keys;
  for (const auto& k : t.keys) keys += (keys.empty() ? "" : ", ") + Quote(k);
  return "QUALIFY row_number() OVER (PARTITION BY " + keys + " ORDER BY " + Quote(t.order_by) +
         " DESC NULLS LAST) = 1";
}

std::string StripTrailingSemicolons(std::string sql) {
  while (!sql.empty() &&
         (std::isspace(static_cast<unsigned char>(sql.back())) || sql.back() == ';')) {
    sql.pop_back();
  }
  return sql;
}

std::string Quote(const std::string& name) {
  std::string out = "\"";
  for (char c : name) {
    out += c;
    if (c == '"') out += '"';
  }
  return out + "\"";
}

// Why a stale run of `t` will recompute the whole table although it reads several
// tables with on_change keys / partitions ("" otherwise). Defined below.
arrow::Result<std::string> PartsNote(const repo::FeatureRepository& repo, const Transformation& t);

}  // namespace

arrow::Status CheckOutputSchema(const repo::FeatureRepository& repo, const Definitions& defs,
                                const Transformation& t, const arrow::Schema& schema) {
  return CheckFeatureViews(repo, defs, t, schema);
}

arrow::Result<std::vector<PlannedRun>> PlanRuns(const repo::FeatureRepository& repo,
                                                const Definitions& defs,
                                                const std::vector<std::string>& names) {
  ARROW_ASSIGN_OR_RAISE(auto order, Order(defs, names));
  std::map<std::string, const Transformation*> writer;
  for (const auto& t : defs.transformations) writer[t.output] = &t;
  std::vector<PlannedRun> plan;
  std::set<std::string> will_run;
  for (const auto* t : order) {
    PlannedRun p;
    p.name = t->name;
    p.output = t->output;
    p.mode = t->mode;
    p.inputs = InputsOf(*t);
    for (const auto& in : p.inputs) {
      auto it = writer.find(in);
      if (it != writer.end()) p.upstream.push_back(it->second->name);
    }
    ARROW_ASSIGN_OR_RAISE(auto staleness, StaleReason(repo, *t));
    p.reason = std::move(staleness.reason);
    p.cause = std::move(staleness.cause);
    if (p.reason.empty()) {
      for (const auto& u : p.upstream) {
        if (will_run.count(u)) {
          p.reason = "upstream " + u + " runs first";
          p.cause = "upstream";
          break;
        }
      }
    }
    p.stale = !p.reason.empty();
    if (p.stale) {
      ARROW_ASSIGN_OR_RAISE(auto note, PartsNote(repo, *t));
      if (!note.empty()) p.reason += "; " + note;
      will_run.insert(p.name);
    } else {
      p.reason = "up to date";
      p.cause = "up_to_date";
    }
    plan.push_back(std::move(p));
  }
  return plan;
}

namespace {

struct Input {
  std::string path;
  std::unique_ptr<delta::DeltaTable> table;
  std::shared_ptr<const delta::Snapshot> snapshot;
  bool self = false;  // the transformation's own output
};

// A data file and its deletion vector: a file that disappears, or that gets a
// new deletion vector, lost rows (an update or a delete).
std::string FileKey(const delta::AddFile& f) {
  return f.path + '\x1f' + (f.deletion_vector ? f.deletion_vector->path_or_inline_dv : "");
}

struct Changes {
  std::vector<delta::AddFile> added;    // files of the new snapshot the old one lacks
  std::vector<delta::AddFile> removed;  // files of the old snapshot the new one lacks
};

Changes Diff(const delta::Snapshot& before, const delta::Snapshot& now) {
  std::set<std::string> old_files, new_files;
  for (const auto& f : before.files()) old_files.insert(FileKey(f));
  for (const auto& f : now.files()) new_files.insert(FileKey(f));
  Changes c;
  for (const auto& f : now.files()) {
    if (!old_files.count(FileKey(f))) c.added.push_back(f);
  }
  for (const auto& f : before.files()) {
    if (!new_files.count(FileKey(f))) c.removed.push_back(f);
  }
  return c;
}

arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> ReadFiles(
    const delta::DeltaTable& table, std::shared_ptr<const delta::Snapshot> snapshot,
    std::vector<delta::AddFile> files, const std::optional<std::vector<std::string>>& columns) {
  ARROW_ASSIGN_OR_RAISE(auto fields, delta::ResolveColumns(*snapshot->schema(), columns));
  return delta::MakeFileByFileReader(table.filesystem(), std::move(snapshot), std::move(files),
                                     std::move(fields), std::nullopt);
}

std::shared_ptr<arrow::RecordBatchReader> TableReader(const std::shared_ptr<arrow::Table>& t) {
  return std::make_shared<arrow::TableBatchReader>(t);
}

std::pair<std::string, std::string> SplitPath(const std::string& path) {
  const auto slash = path.find('/');
  return {path.substr(0, slash), path.substr(slash + 1)};
}

// A literal of the predicate language (expression.h) for `scalar`; nullopt for
// types it cannot spell exactly.
std::optional<std::string> Literal(const arrow::Scalar& scalar) {
  if (!scalar.is_valid) return "NULL";
  const auto id = scalar.type->id();
  if (arrow::is_integer(id)) return scalar.ToString();
  if (id == arrow::Type::STRING || id == arrow::Type::LARGE_STRING) {
    std::string out = "'";
    for (char c : scalar.ToString()) {
      out += c;
      if (c == '\'') out += '\'';
    }
    return out + "'";
  }
  return std::nullopt;
}

std::string QuoteString(const std::string& v) {
  std::string out = "'";
  for (char c : v) {
    out += c;
    if (c == '\'') out += '\'';
  }
  return out + "'";
}

// A column name in the predicate language: `back-quoted`.
std::string Column(const std::string& name) { return "`" + name + "`"; }

// `col = lit`, or `col IS NULL` for the NULL literal.
std::string Equals(const std::string& col, const std::string& lit) {
  return lit == "NULL" ? Column(col) + " IS NULL" : Column(col) + " = " + lit;
}

// The predicate that selects the rows of `keys` (distinct key tuples, columns in
// key order); nullopt when a key type has no exact literal. An integer key's list
// comes with its range (`k >= lo AND k <= hi AND k IN (...)`): file and row group
// statistics rule files out by the range, which they cannot do by an IN list, so
// the input scans and the output's replaceWhere read only the files that may hold
// the keys.
std::optional<std::string> KeyPredicate(const arrow::Table& keys) {
  std::vector<std::string> names = keys.ColumnNames();
  std::string pred;
  if (names.size() == 1) {
    std::string list;
    bool has_null = false;
    std::optional<std::string> lo, hi;  // the range of an integer key's non-null values
    if (arrow::is_integer(keys.column(0)->type()->id())) {
      auto min_max = arrow::compute::MinMax(keys.column(0));  // nulls skipped
      if (!min_max.ok()) return std::nullopt;
      const auto& pair = min_max->scalar_as<arrow::StructScalar>().value;
      if (pair[0]->is_valid && pair[1]->is_valid) {
        lo = Literal(*pair[0]);
        hi = Literal(*pair[1]);
      }
    }
    for (int64_t i = 0; i < keys.num_rows(); ++i) {
      auto s = keys.column(0)->GetScalar(i);
      if (!s.ok()) return std::nullopt;
      auto lit = Literal(**s);
      if (!lit) return std::nullopt;
      if (*lit == "NULL") {
        has_null = true;
      } else {
        list += (list.empty() ? "" : ", ") + *lit;
      }
    }
    if (!list.empty()) {
      pred = Column(names[0]) + " IN (" + list + ")";
      if (lo && hi) {
        pred = "(" + Column(names[0]) + " >= " + *lo + " AND " + Column(names[0]) + " <= " + *hi +
               " AND " + pred + ")";
      }
    }
    if (has_null) pred += (pred.empty() ? "" : " OR ") + Column(names[0]) + " IS NULL";
    return pred.empty() ? "FALSE" : pred;
  }
  for (int64_t i = 0; i < keys.num_rows(); ++i) {
    std::string conj;
    for (size_t c = 0; c < names.size(); ++c) {
      auto s = keys.column(static_cast<int>(c))->GetScalar(i);
      if (!s.ok()) return std::nullopt;
      auto lit = Literal(**s);
      if (!lit) return std::nullopt;
      conj += (conj.empty() ? "" : " AND ") + Equals(names[c], *lit);
    }
    pred += (pred.empty() ? "(" : " OR (") + conj + ")";
  }
  return pred.empty() ? "FALSE" : pred;
}

// The most keys (or partitions) a run recomputes one by one; beyond it the run
// recomputes the whole table (the predicate that replaces them grows with them).
constexpr int64_t kMaxRecomputedKeys = 20000;

// Below this size of rewritten input files, on_change keys/partitions always
// recomputes in parts; above it, only while the files hold at most half the input.
constexpr int64_t kMinRewrittenBytes = 64 << 20;

// The same floor for a query over several tables, lower: diffing rewritten files
// that hold most of one input costs about what the whole join costs
// (docs/benchmarks.md, "Incremental runs over two tables").
constexpr int64_t kMinRewrittenBytesOfSeveral = 8 << 20;

// How one run reads its input and lands its result.
enum class RunKind {
  kWhole,       // whole inputs; the result replaces the table (or creates it)
  kWholeMerge,  // whole inputs, merged / appended (a query that reads its own output)
  kRows,        // the rows the input gained: appended, or merged
  kKeys,        // the keys changed rows had or have, recomputed and replaced
  kPartitions,  // the partitions changed files belong to, recomputed and replaced
};

const char* RunKindName(RunKind k) {
  switch (k) {
    case RunKind::kWhole:
    case RunKind::kWholeMerge:
      return "all";
    case RunKind::kRows:
      return "new_rows";
    case RunKind::kKeys:
      return "keys";
    case RunKind::kPartitions:
      return "partitions";
  }
  return "all";
}

// ---- several inputs: recomputing the keys or partitions their changes touch ----

// Whether `t` recomputes in parts (keys or partitions) when it reads several tables.
bool InPartsOverSeveral(const Transformation& t) {
  return t.mode != TransformMode::kFullRefresh && (t.on_change == registry::OnChange::kKeys ||
                                                   t.on_change == registry::OnChange::kPartitions);
}

// The output columns a recomputation goes by: the keys, or partition_by.
const std::vector<std::string>& RecomputeBy(const Transformation& t) {
  return t.on_change == registry::OnChange::kKeys ? t.keys : t.partition_by;
}

// Every input_keys entry names a table the transformation reads.
arrow::Status CheckInputKeys(const Transformation& t, const std::vector<std::string>& inputs) {
  for (const auto& ik : t.input_keys) {
    if (std::find(inputs.begin(), inputs.end(), ik.table) == inputs.end()) {
      return DefinitionError(ik.loc,
                             "transformation '" + t.name + "': input_keys names " + ik.table +
                                 ", which it does not read (it reads: " + JoinNames(inputs) + ")");
    }
  }
  return arrow::Status::OK();
}

// The columns of input `path` (with `schema`) that hold RecomputeBy(t), in order:
// those input_keys declares, or the same names. Empty, with `*why`, when its rows
// map to none (a change of it then recomputes the whole table). An input_keys
// column the input lacks is an error at its line.
arrow::Result<std::vector<std::string>> InputColumns(const Transformation& t,
                                                     const std::string& path,
                                                     const arrow::Schema& schema,
                                                     std::string* why) {
  const bool keys = t.on_change == registry::OnChange::kKeys;
  for (const auto& ik : t.input_keys) {
    if (ik.table != path) continue;
    if (ik.columns.empty()) {
      *why = "its input_keys are [] (its rows map to no " +
             std::string(keys ? "key" : "partition") + ")";
      return std::vector<std::string>{};
    }
    for (const auto& c : ik.columns) {
      if (!schema.GetFieldByName(c)) {
        return DefinitionError(
            ik.loc, "transformation '" + t.name + "': input_keys names column '" + c + "' of " +
                        path + ", which lacks it (columns: " + JoinNames(schema.field_names()) +
                        ")");
      }
    }
    return ik.columns;
  }
  for (const auto& c : RecomputeBy(t)) {
    if (!schema.GetFieldByName(c)) {
      *why = "it has no column '" + c + "' to map its rows to the " +
             (keys ? "keys" : "partitions") + " (declare its columns in input_keys)";
      return std::vector<std::string>{};
    }
  }
  return RecomputeBy(t);
}

// The distinct values of `columns` in the partition values of `files` (every
// column a partition column of `schema`), named `names`; nullopt when a value does
// not convert to the column's type.
std::optional<std::shared_ptr<arrow::Table>> PartitionValues(
    const std::vector<delta::AddFile>& files, const std::vector<std::string>& columns,
    const std::vector<std::string>& names, const arrow::Schema& schema) {
  std::set<std::vector<std::optional<std::string>>> values;
  for (const auto& f : files) {
    std::vector<std::optional<std::string>> v;
    for (const auto& c : columns) {
      auto it = f.partition_values.find(c);
      v.push_back(it == f.partition_values.end() ? std::nullopt : it->second);
    }
    values.insert(std::move(v));
  }
  arrow::FieldVector fields;
  arrow::ArrayVector arrays;
  for (size_t i = 0; i < columns.size(); ++i) {
    arrow::StringBuilder b;
    for (const auto& v : values) {
      if (!(v[i] ? b.Append(*v[i]) : b.AppendNull()).ok()) return std::nullopt;
    }
    std::shared_ptr<arrow::Array> strings;
    if (!b.Finish(&strings).ok()) return std::nullopt;
    auto type = schema.GetFieldByName(columns[i])->type();
    auto cast = arrow::compute::Cast(strings, type);
    if (!cast.ok()) return std::nullopt;
    fields.push_back(arrow::field(names[i], type));
    arrays.push_back(cast->make_array());
  }
  return arrow::Table::Make(arrow::schema(fields), arrays);
}

// How a run over several inputs recomputes in parts (docs/pipelines.md,
// "Incremental runs over several tables").
struct PartsPlan {
  bool whole = false;  // recompute everything instead, because of `why_whole`
  std::string why_whole;
  // The distinct values of RecomputeBy(t) that changed rows of any input had or
  // have (output names); null when no input's files changed.
  std::shared_ptr<arrow::Table> affected;
  std::map<std::string, std::vector<std::string>> columns;  // mapped input -> its columns
  std::map<std::string, int64_t> since;  // inputs that changed -> the version last read
};

using ColumnsOf = std::function<std::optional<std::vector<std::string>>(const delta::Snapshot&)>;

// Projected columns plus `extra` (nullopt stays every column).
std::optional<std::vector<std::string>> WithColumns(std::optional<std::vector<std::string>> cols,
                                                    const std::vector<std::string>& extra) {
  if (!cols) return cols;
  for (const auto& c : extra) {
    if (std::find(cols->begin(), cols->end(), c) == cols->end()) cols->push_back(c);
  }
  return cols;
}

// The predicate selecting the rows of `affected` in a table whose columns for
// them are `columns`; nullopt when a type has no exact literal.
std::optional<std::string> AffectedPredicate(const std::shared_ptr<arrow::Table>& affected,
                                             const std::vector<std::string>& columns) {
  if (!affected || affected->num_rows() == 0) return std::string("FALSE");
  auto renamed = affected->RenameColumns(columns);
  if (!renamed.ok()) return std::nullopt;
  return KeyPredicate(**renamed);
}

// Finds the affected values with `engine` (the run's: one DuckDB per run), in
// schemas of its own (__stratalake_affected, __stratalake_changed_inN).
arrow::Result<PartsPlan> PlanParts(const Transformation& t, std::vector<Input>& inputs,
                                   const RunRecord& last, const ColumnsOf& columns_of,
                                   SqlEngine& engine) {
  PartsPlan plan;
  const bool keys = t.on_change == registry::OnChange::kKeys;
  const std::vector<std::string>& by = RecomputeBy(t);
  std::vector<std::string> paths;
  for (const auto& in : inputs) paths.push_back(in.path);
  ARROW_RETURN_NOT_OK(CheckInputKeys(t, paths));
  auto whole = [&plan](std::string why) {
    plan.whole = true;
    plan.why_whole = std::move(why);
    return plan;
  };
  ARROW_RETURN_NOT_OK(engine.Query("CREATE SCHEMA __stratalake_affected; SELECT 1").status());
  std::vector<std::string> parts;  // per changed input: a query of its affected values
  for (auto& in : inputs) {
    std::string why;
    ARROW_ASSIGN_OR_RAISE(auto cols, InputColumns(t, in.path, *in.snapshot->schema(), &why));
    if (!cols.empty()) plan.columns[in.path] = cols;
    auto prev = last.inputs.find(in.path);
    if (prev == last.inputs.end()) return whole(in.path + " is read for the first time");
    if (prev->second == in.snapshot->version()) continue;
    if (prev->second > in.snapshot->version()) {
      return whole(in.path + " went back to version " + std::to_string(in.snapshot->version()));
    }
    plan.since[in.path] = prev->second;
    ARROW_ASSIGN_OR_RAISE(auto before, in.table->AtVersion(prev->second));
    Changes changes = Diff(*before, *in.snapshot);
    if (changes.added.empty() && changes.removed.empty()) continue;
    if (cols.empty()) return whole(in.path + " changed and " + why);
    int64_t removed_bytes = 0;
    for (const auto& f : changes.removed) removed_bytes += f.size;
    if (removed_bytes > kMinRewrittenBytesOfSeveral && removed_bytes * 2 > before->SizeInBytes()) {
      return whole("rows of " + in.path + " were updated or deleted since version " +
                   std::to_string(prev->second) + " in files holding most of its rows");
    }
    const std::string name = "in" + std::to_string(parts.size());
    // Partition columns: the changed files' partition values say it all.
    auto is_part = [&cols](const delta::Snapshot& s) {
      for (const auto& c : cols) {
        const auto& p = s.metadata().partition_columns;
        if (std::find(p.begin(), p.end(), c) == p.end()) return false;
      }
      return true;
    };
    if (is_part(*before) && is_part(*in.snapshot)) {
      std::vector<delta::AddFile> files = changes.added;
      files.insert(files.end(), changes.removed.begin(), changes.removed.end());
      auto values = PartitionValues(files, cols, by, *in.snapshot->schema());
      if (values) {
        ARROW_RETURN_NOT_OK(engine.LoadTable("__stratalake_affected", name, TableReader(*values)));
        parts.push_back("SELECT * FROM __stratalake_affected." + name);
        continue;
      }
    }
    std::string select;
    for (size_t i = 0; i < cols.size(); ++i) {
      select += (i ? ", " : "") + Quote(cols[i]) + " AS " + Quote(by[i]);
    }
    const std::string schema = "__stratalake_changed_" + name;
    if (changes.removed.empty()) {
      // Only files added: their rows are the changed rows; their key columns say it all.
      ARROW_ASSIGN_OR_RAISE(auto new_keys, ReadFiles(*in.table, in.snapshot, changes.added, cols));
      ARROW_RETURN_NOT_OK(engine.LoadTable(schema, "added", new_keys));
      ARROW_RETURN_NOT_OK(engine
                              .Query("CREATE TABLE __stratalake_affected." + name +
                                     " AS SELECT DISTINCT " + select + " FROM " + schema +
                                     ".added; SELECT 1")
                              .status());
      parts.push_back("SELECT * FROM __stratalake_affected." + name);
      continue;
    }
    // Otherwise the changed rows: the rewritten files' rows as they were that are gone,
    // and the new files' rows that are new (EXCEPT ALL both ways, over the columns the
    // query reads: a change elsewhere changes no result).
    ARROW_ASSIGN_OR_RAISE(auto old_rows, ReadFiles(*in.table, before, changes.removed,
                                                   WithColumns(columns_of(*before), cols)));
    ARROW_ASSIGN_OR_RAISE(auto new_rows, ReadFiles(*in.table, in.snapshot, changes.added,
                                                   WithColumns(columns_of(*in.snapshot), cols)));
    ARROW_RETURN_NOT_OK(engine.LoadTable(schema, "removed", old_rows));
    ARROW_RETURN_NOT_OK(engine.LoadTable(schema, "added", new_rows));
    const std::string removed = schema + ".removed", added = schema + ".added";
    std::string sql = "CREATE TABLE __stratalake_affected." + name + " AS SELECT DISTINCT " +
                      select + " FROM (SELECT * FROM " + removed + " EXCEPT ALL SELECT * FROM " +
                      added + " UNION ALL (SELECT * FROM " + added + " EXCEPT ALL SELECT * FROM " +
                      removed + ")); SELECT 1";
    if (!engine.Query(sql).ok()) {
      // The schema changed in between: every value of the files counts.
      sql = "CREATE TABLE __stratalake_affected." + name + " AS SELECT DISTINCT * FROM (SELECT " +
            select + " FROM " + removed + " UNION ALL SELECT " + select + " FROM " + added +
            "); SELECT 1";
      ARROW_RETURN_NOT_OK(engine.Query(sql).status());
    }
    parts.push_back("SELECT * FROM __stratalake_affected." + name);
  }
  if (parts.empty()) return plan;
  std::string sql;
  for (const auto& q : parts) sql += (sql.empty() ? "" : " UNION ALL BY NAME ") + q;
  auto affected = engine.Query("SELECT DISTINCT * FROM (" + sql + ") ORDER BY ALL");
  if (!affected.ok()) {
    return whole("the inputs' " + std::string(keys ? "key" : "partition") +
                 " columns have types that do not compare (" + affected.status().message() + ")");
  }
  plan.affected = *affected;
  const int64_t n = plan.affected->num_rows();
  if (n > kMaxRecomputedKeys) {
    return whole(std::to_string(n) + (keys ? " keys" : " partitions") + " changed");
  }
  if (!AffectedPredicate(plan.affected, by)) {
    return whole(std::string("the ") + (keys ? "keys'" : "partition columns'") +
                 " types cannot be listed");
  }
  return plan;
}

arrow::Result<std::string> PartsNote(const repo::FeatureRepository& repo, const Transformation& t) {
  const auto all = AllInputsOf(t);
  const auto inputs = InputsOf(t);
  if (!InPartsOverSeveral(t) || inputs.size() < 2 || all.size() != inputs.size()) return "";
  ARROW_RETURN_NOT_OK(CheckInputKeys(t, inputs));
  auto target = delta::DeltaTable::Open(repo.TableUri(t.output));
  if (!target.ok()) return "";
  ARROW_ASSIGN_OR_RAISE(auto last, LastRun(**target, t.name));
  if (!last || !SameQuery(*last, t)) return "";
  for (const auto& path : inputs) {
    auto table = delta::DeltaTable::Open(repo.TableUri(path));
    if (!table.ok()) return "";
    ARROW_ASSIGN_OR_RAISE(auto snap, (*table)->Latest());
    std::string why;
    ARROW_ASSIGN_OR_RAISE(auto cols, InputColumns(t, path, *snap->schema(), &why));
    auto prev = last->inputs.find(path);
    if (cols.empty() && prev != last->inputs.end() && prev->second != snap->version()) {
      return "recomputes the whole table: " + path + " changed and " + why;
    }
  }
  return "";
}

// Computes the result from the inputs loaded into `engine` (as LAYER.TABLE) or
// handed over as Arrow tables.
using Compute = std::function<arrow::Result<std::shared_ptr<arrow::Table>>(
    SqlEngine& engine, std::map<std::string, std::shared_ptr<arrow::RecordBatchReader>>& inputs)>;

arrow::Result<RunResult> RunWith(const repo::FeatureRepository& repo, const Definitions& defs,
                                 const Transformation& tr, const Compute& compute,
                                 const RunOptions& options) {
  const Transformation* t = &tr;
  const std::string what = "transformation '" + t->name + "'";
  RunResult out;
  out.name = t->name;
  out.output = t->output;

  ARROW_ASSIGN_OR_RAISE(auto target, delta::DeltaTable::ForPath(repo.TableUri(t->output)));
  ARROW_ASSIGN_OR_RAISE(bool exists, target->Exists());
  std::shared_ptr<const delta::Snapshot> target_snap;
  std::optional<RunRecord> last;
  if (exists) {
    ARROW_ASSIGN_OR_RAISE(target_snap, target->Latest());
    ARROW_ASSIGN_OR_RAISE(last, LastRun(*target, t->name));
  }
  const std::string fingerprint = Fingerprint(*t);

  // Pin every input at its latest version.
  std::vector<Input> inputs;
  bool reads_self = false;
  for (const auto& path : AllInputsOf(*t)) {
    auto table = delta::DeltaTable::Open(repo.TableUri(path));
    if (!table.ok() && HasErrorKind(table.status(), ErrorKind::kTableNotFound)) {
      if (path == t->output) continue;  // reads its own output, which a first run creates
      return DefinitionError(t->sql_loc, what + ": reads " + path +
                                             ", which does not exist yet (run what writes it "
                                             "first, or ingest it)");
    }
    ARROW_RETURN_NOT_OK(table.status());
    Input in{path, std::move(*table), nullptr, path == t->output};
    ARROW_ASSIGN_OR_RAISE(in.snapshot, in.table->Latest());
    if (in.self) {
      reads_self = true;
    } else {
      out.inputs[path] = in.snapshot->version();
    }
    inputs.push_back(std::move(in));
  }

  if (!t->input_keys.empty()) {
    std::vector<std::string> read;
    for (const auto& [path, v] : out.inputs) read.push_back(path);
    if (read.size() < 2) {
      return DefinitionError(t->input_keys.front().loc,
                             what +
                                 ": input_keys applies to transformations that read several "
                                 "tables (this one reads " +
                                 JoinNames(read) + "; its keys are the input's columns)");
    }
    ARROW_RETURN_NOT_OK(CheckInputKeys(*t, read));
  }
  const bool unchanged_query = last && SameQuery(*last, *t);
  if (!options.full_refresh && unchanged_query && last->inputs == out.inputs) {
    out.noop = true;
    out.version = target_snap->version();
    out.detail = "up to date";
    return out;
  }

  // Decide how this run reads and writes (docs/pipelines.md, "Incremental runs").
  RunKind kind = RunKind::kWhole;
  std::string why_whole;  // why an incremental transformation recomputes everything
  Input* changed = nullptr;
  Changes changes;
  int64_t since = -1;
  if (reads_self && t->mode != TransformMode::kFullRefresh && !options.full_refresh && exists) {
    kind = RunKind::kWholeMerge;
  }
  const RunKind kWholeOrMerge = kind;
  if (t->mode != TransformMode::kFullRefresh && !options.full_refresh && unchanged_query &&
      out.inputs.size() == 1) {
    for (auto& in : inputs) {
      if (!in.self) changed = &in;
    }
    auto prev = last->inputs.find(changed->path);
    if (prev != last->inputs.end() && prev->second <= changed->snapshot->version()) {
      since = prev->second;
      ARROW_ASSIGN_OR_RAISE(auto before, changed->table->AtVersion(since));
      changes = Diff(*before, *changed->snapshot);
      if (changes.removed.empty()) {
        kind = RunKind::kRows;
      } else {
        const std::string rewritten = "rows of " + changed->path +
                                      " were updated or deleted since version " +
                                      std::to_string(since);
        registry::OnChange on_change = t->on_change;
        if (reads_self && on_change != registry::OnChange::kFail) {
          // The query reads its own output: it cannot be recomputed in parts.
          on_change = t->mode == TransformMode::kAppend ? registry::OnChange::kFail
                                                        : registry::OnChange::kFullRefresh;
        }
        switch (on_change) {
          case registry::OnChange::kFail:
            return arrow::Status::Invalid(
                t->loc.ToString(), ": ", what, ": ", TransformModeName(t->mode),
                " mode reads only the rows ", changed->path, " gained since its last run (version ",
                since, "), but rows were updated, deleted or rewritten up to version ",
                changed->snapshot->version(),
                "; run it with --full-refresh to recompute the table (or declare on_change: "
                "full_refresh, keys or partitions)");
          case registry::OnChange::kFullRefresh:
            why_whole = rewritten;
            break;
          case registry::OnChange::kKeys:
            kind = RunKind::kKeys;
            break;
          case registry::OnChange::kPartitions:
            kind = RunKind::kPartitions;
            break;
        }
        // Finding what changed reads the rewritten files; when they hold most of the
        // input, recomputing everything costs less.
        int64_t removed_bytes = 0;
        for (const auto& f : changes.removed) removed_bytes += f.size;
        if ((kind == RunKind::kKeys || kind == RunKind::kPartitions) &&
            removed_bytes > kMinRewrittenBytes && removed_bytes * 2 > before->SizeInBytes()) {
          kind = kWholeOrMerge;
          why_whole = rewritten + " in files holding most of its rows";
        }
      }
    }
  }

  // Projection pushdown: a SQL transformation reads only the columns its SQL can
  // name (plus the keys and partition columns incremental runs need).
  auto columns_of = [&](const delta::Snapshot& snap) -> std::optional<std::vector<std::string>> {
    if (t->sql.empty()) return std::nullopt;
    auto cols = ProjectedColumns(t->sql, *snap.schema());
    for (const auto* extra : {&t->keys, &t->partition_by}) {
      for (const auto& c : *extra) {
        if (snap.schema()->GetFieldByName(c) &&
            std::find(cols.begin(), cols.end(), c) == cols.end()) {
          cols.push_back(c);
        }
      }
    }
    return cols;
  };
  auto scan_all = [&](const Input& in) {
    delta::ReadOptions ro;
    ro.columns = columns_of(*in.snapshot);
    return in.table->Scan(in.snapshot, ro);
  };

  ARROW_ASSIGN_OR_RAISE(auto engine, SqlEngine::Open());
  std::map<std::string, std::shared_ptr<arrow::RecordBatchReader>> readers;
  std::string replace_where;  // kKeys / kPartitions: the output rows the result replaces
  std::string recomputed;     // "3 key(s)" / "2 partition(s)"
  // Several inputs, on_change keys / partitions: every change (appends included)
  // recomputes the keys or partitions the changed rows of any input had or have, from
  // every input filtered to them (docs/pipelines.md, "Incremental runs over several
  // tables").
  std::optional<PartsPlan> parts;
  if (InPartsOverSeveral(*t) && !options.full_refresh && unchanged_query && out.inputs.size() > 1 &&
      !reads_self) {
    ARROW_ASSIGN_OR_RAISE(auto p, PlanParts(*t, inputs, *last, columns_of, *engine));
    if (p.whole) {
      why_whole = p.why_whole;
    } else {
      const bool keys = t->on_change == registry::OnChange::kKeys;
      kind = keys ? RunKind::kKeys : RunKind::kPartitions;
      replace_where = *AffectedPredicate(p.affected, RecomputeBy(*t));
      recomputed = std::to_string(p.affected ? p.affected->num_rows() : 0) +
                   (keys ? " key(s)" : " partition(s)");
      parts = std::move(p);
    }
  }
  for (auto& in : inputs) {
    std::shared_ptr<arrow::RecordBatchReader> reader;
    if (parts) {
      auto mapped = parts->columns.find(in.path);
      if (mapped == parts->columns.end()) {
        ARROW_ASSIGN_OR_RAISE(reader, scan_all(in));  // unchanged, and maps to no key
      } else {
        // The rows of the affected keys (or partitions): file statistics and partition
        // values skip the files that cannot hold them.
        delta::ReadOptions ro;
        ro.columns = WithColumns(columns_of(*in.snapshot), mapped->second);
        ro.filter = *AffectedPredicate(parts->affected, mapped->second);
        ARROW_ASSIGN_OR_RAISE(reader, in.table->Scan(in.snapshot, ro));
      }
    } else if (&in == changed && kind == RunKind::kRows) {
      ARROW_ASSIGN_OR_RAISE(
          reader, ReadFiles(*in.table, in.snapshot, changes.added, columns_of(*in.snapshot)));
    } else if (&in == changed && kind == RunKind::kKeys) {
      // The keys of the rows that changed: those of the rewritten files' rows as
      // they were that are gone now, and of the new files' rows that are new (a
      // file rewritten by a delete holds mostly rows that did not change).
      ARROW_ASSIGN_OR_RAISE(auto before, in.table->AtVersion(since));
      for (const auto& k : t->keys) {
        if (!before->schema()->GetFieldByName(k) || !in.snapshot->schema()->GetFieldByName(k)) {
          return DefinitionError(t->loc, what + ": on_change 'keys' reads the key column '" + k +
                                             "' from " + in.path +
                                             ", which lacks it; select the keys under their "
                                             "input names or use on_change: full_refresh");
        }
      }
      // Only the columns the query reads: a change elsewhere changes no result.
      ARROW_ASSIGN_OR_RAISE(auto old_rows,
                            ReadFiles(*in.table, before, changes.removed, columns_of(*before)));
      ARROW_ASSIGN_OR_RAISE(auto new_rows, ReadFiles(*in.table, in.snapshot, changes.added,
                                                     columns_of(*in.snapshot)));
      ARROW_RETURN_NOT_OK(engine->LoadTable("__stratalake_changed", "removed", old_rows));
      ARROW_RETURN_NOT_OK(engine->LoadTable("__stratalake_changed", "added", new_rows));
      std::string cols;
      for (const auto& k : t->keys) cols += (cols.empty() ? "" : ", ") + Quote(k);
      auto keys = engine->Query(
          "SELECT DISTINCT " + cols +
          " FROM (SELECT * FROM __stratalake_changed.removed EXCEPT ALL "
          "SELECT * FROM __stratalake_changed.added UNION ALL (SELECT * FROM "
          "__stratalake_changed.added EXCEPT ALL SELECT * FROM __stratalake_changed.removed)) "
          "ORDER BY ALL");
      if (!keys.ok()) {
        // The schema changed in between: every key of the files counts.
        keys = engine->Query("SELECT DISTINCT * FROM (SELECT " + cols +
                             " FROM __stratalake_changed.removed UNION ALL SELECT " + cols +
                             " FROM __stratalake_changed.added) ORDER BY ALL");
      }
      ARROW_RETURN_NOT_OK(keys.status());
      std::optional<std::string> pred;
      const int64_t n_keys = (*keys)->num_rows();
      if (n_keys <= kMaxRecomputedKeys) pred = KeyPredicate(**keys);
      if (!pred) {
        kind = RunKind::kWhole;
        why_whole = n_keys > kMaxRecomputedKeys ? std::to_string(n_keys) + " keys changed"
                                                : "the keys' types cannot be listed";
        ARROW_ASSIGN_OR_RAISE(reader, scan_all(in));
      } else {
        replace_where = *pred;
        recomputed = std::to_string(n_keys) + " key(s)";
        // The same predicate over the input skips the files whose statistics rule
        // the keys out (recent keys live in recent files).
        delta::ReadOptions ro;
        ro.columns = columns_of(*in.snapshot);
        ro.filter = *pred;
        ARROW_ASSIGN_OR_RAISE(auto all, in.table->Scan(in.snapshot, ro));
        ARROW_RETURN_NOT_OK(engine->LoadTable("__stratalake_all", "input", all));
        ARROW_RETURN_NOT_OK(engine->LoadTable("__stratalake_keys", "keys", TableReader(*keys)));
        std::string match;
        for (const auto& k : t->keys) {
          match += (match.empty() ? "" : " AND ") + std::string("k.") + Quote(k) +
                   " IS NOT DISTINCT FROM i." + Quote(k);
        }
        ARROW_ASSIGN_OR_RAISE(auto rows,
                              engine->Query("SELECT i.* FROM __stratalake_all.input i WHERE EXISTS "
                                            "(SELECT 1 FROM __stratalake_keys.keys k WHERE " +
                                            match + ")"));
        reader = TableReader(rows);
      }
    } else if (&in == changed && kind == RunKind::kPartitions) {
      const auto& in_parts = in.snapshot->metadata().partition_columns;
      for (const auto& p : t->partition_by) {
        if (std::find(in_parts.begin(), in_parts.end(), p) == in_parts.end()) {
          return DefinitionError(
              t->loc, what + ": on_change 'partitions' needs " + in.path + " partitioned by '" + p +
                          "' too (its partition columns: " +
                          (in_parts.empty() ? std::string("none") : JoinNames(in_parts)) +
                          "); use on_change: full_refresh");
        }
      }
      if (target_snap && target_snap->metadata().partition_columns != t->partition_by) {
        return DefinitionError(t->loc, what + ": on_change 'partitions' needs " + t->output +
                                           " partitioned by " + JoinNames(t->partition_by) +
                                           " (it is partitioned by " +
                                           JoinNames(target_snap->metadata().partition_columns) +
                                           "); run it with --full-refresh after changing it");
      }
      auto part_of = [&](const delta::AddFile& f) {
        std::vector<std::optional<std::string>> v;
        for (const auto& p : t->partition_by) {
          auto it = f.partition_values.find(p);
          v.push_back(it == f.partition_values.end() ? std::nullopt : it->second);
        }
        return v;
      };
      std::set<std::vector<std::optional<std::string>>> parts;
      for (const auto& f : changes.added) parts.insert(part_of(f));
      for (const auto& f : changes.removed) parts.insert(part_of(f));
      std::vector<delta::AddFile> files;
      for (const auto& f : in.snapshot->files()) {
        if (parts.count(part_of(f))) files.push_back(f);
      }
      std::string pred;
      for (const auto& v : parts) {
        std::string conj;
        for (size_t i = 0; i < v.size(); ++i) {
          auto field = in.snapshot->schema()->GetFieldByName(t->partition_by[i]);
          const bool integer = field && arrow::is_integer(field->type()->id());
          conj += (conj.empty() ? "" : " AND ") +
                  Equals(t->partition_by[i], !v[i]     ? "NULL"
                                             : integer ? *v[i]
                                                       : QuoteString(*v[i]));
        }
        pred += (pred.empty() ? "(" : " OR (") + conj + ")";
      }
      replace_where = pred.empty() ? "FALSE" : pred;
      recomputed = std::to_string(parts.size()) + " partition(s)";
      ARROW_ASSIGN_OR_RAISE(reader,
                            ReadFiles(*in.table, in.snapshot, files, columns_of(*in.snapshot)));
    } else {
      ARROW_ASSIGN_OR_RAISE(reader, scan_all(in));
    }
    readers[in.path] = std::move(reader);
  }

  auto result = compute(*engine, readers);
  if (!result.ok()) return result.status();
  ARROW_ASSIGN_OR_RAISE(auto rows, ConformToDeclared(*t, *result));
  ARROW_RETURN_NOT_OK(CheckFeatureViews(repo, defs, *t, *rows->schema()));
  out.rows = rows->num_rows();

  RunRecord record;
  record.fingerprint = fingerprint;
  record.inputs = out.inputs;
  record.read = RunKindName(kind);
  if (kind != RunKind::kWhole && kind != RunKind::kWholeMerge && changed) {
    record.since[changed->path] = since;
  }
  if (parts) record.since = parts->since;
  const int64_t run_number =
      (target_snap ? target_snap->AppTransactionVersion(AppId(t->name)).value_or(0) : 0) + 1;
  const delta::AppTransaction txn{AppId(t->name), run_number, std::nullopt};
  const std::string metadata = RecordJson(t->name, record);
  auto landed = [&](arrow::Result<delta::CommitResult> r) -> arrow::Status {
    if (!r.ok()) {
      return r.status().WithMessage(t->loc.ToString(), ": ", what, ": cannot write ", t->output,
                                    ": ", r.status().message());
    }
    out.version = r->noop ? (target_snap ? target_snap->version() : -1) : r->version;
    if (t->mode == TransformMode::kMerge && exists &&
        (kind == RunKind::kRows || kind == RunKind::kWholeMerge)) {
      out.detail = "merged: " + std::to_string(r->metrics["numTargetRowsInserted"]) +
                   " inserted, " + std::to_string(r->metrics["numTargetRowsUpdated"]) + " updated";
    }
    return arrow::Status::OK();
  };
  if (t->mode == TransformMode::kMerge && exists &&
      (kind == RunKind::kRows || kind == RunKind::kWholeMerge)) {
    delta::MergeOptions mo;
    mo.on = t->keys;
    delta::MatchedClause update;
    update.action = delta::MatchedClause::Action::kUpdateAll;
    if (!t->order_by.empty()) {
      update.condition = "source." + t->order_by + " >= target." + t->order_by;
    }
    mo.when_matched.push_back(update);
    mo.when_not_matched.push_back({});
    mo.txn = txn;
    mo.user_metadata = metadata;
    ARROW_RETURN_NOT_OK(landed(target->Merge(rows, mo)));
    return out;
  }
  delta::WriteOptions wo;
  const bool partial = kind == RunKind::kKeys || kind == RunKind::kPartitions;
  const bool replace = exists && (partial || kind == RunKind::kWhole);
  wo.mode = replace ? delta::WriteMode::kOverwrite : delta::WriteMode::kAppend;
  wo.overwrite_schema = replace && !partial;
  if (partial) wo.replace_where = replace_where;
  wo.partition_by = t->partition_by;
  wo.create.description =
      t->description.empty() ? std::nullopt : std::optional<std::string>(t->description);
  // Keyed outputs (merge mode, whose runs merge or replace rows by key) are created
  // with deletion vectors: a run then marks the replaced rows instead of rewriting
  // the files that hold them, so it costs in proportion to the change. delta-rs
  // from 1.4.2 (scripts/requirements.txt pins 1.6.6), Spark with delta-spark and
  // DuckDB's delta extension read them; readers that predate deletion vectors
  // refuse such tables (docs/pipelines.md). on_change: partitions replaces whole
  // partitions, whose files go whole: vectors would bring nothing there. Only a new
  // table gets the property: an existing output keeps its own (`stratalake table
  // set-property` changes it).
  if (!t->keys.empty()) wo.create.properties["delta.enableDeletionVectors"] = "true";
  wo.txn = txn;
  wo.user_metadata = metadata;
  ARROW_RETURN_NOT_OK(landed(target->Write(rows, wo)));
  if (!exists) {
    out.detail = "created";
  } else if (partial) {
    out.detail = "recomputed " + recomputed;
  } else if (replace) {
    out.detail = why_whole.empty() ? "replaced" : "replaced (" + why_whole + ")";
  } else {
    out.detail = "appended";
  }
  return out;
}

// The result of `t`'s SQL; a merge keeps the latest row per key.
Compute SqlCompute(const Transformation& t) {
  return [&t](SqlEngine& engine,
              std::map<std::string, std::shared_ptr<arrow::RecordBatchReader>>& inputs)
             -> arrow::Result<std::shared_ptr<arrow::Table>> {
    for (auto& [path, reader] : inputs) {
      auto [layer, name] = SplitPath(path);
      ARROW_RETURN_NOT_OK(engine.LoadTable(layer, name, reader));
    }
    std::string sql = StripTrailingSemicolons(t.sql);
    if (t.mode == TransformMode::kMerge && !t.order_by.empty()) {
      sql = "SELECT * FROM (" + sql + "\n) " + DedupeClause(t);
    }
    auto result = engine.Query(sql);
    if (!result.ok()) {
      return DefinitionError(t.sql_loc, "transformation '" + t.name +
                                            "': the query failed: " + result.status().message());
    }
    return result;
  };
}

// The result of `fn` on the inputs (a Python function); a merge keeps the
// latest row per key. Errors of a function of the definition files name the
// definition's file:line.
Compute FunctionCompute(const Transformation& t, const TableFunction& fn) {
  return [&t, fn](SqlEngine& engine,
                  std::map<std::string, std::shared_ptr<arrow::RecordBatchReader>>& readers)
             -> arrow::Result<std::shared_ptr<arrow::Table>> {
    const std::string what = "transformation '" + t.name + "'";
    std::map<std::string, std::shared_ptr<arrow::Table>> tables;
    for (auto& [path, reader] : readers) {
      ARROW_ASSIGN_OR_RAISE(tables[path], reader->ToTable());
    }
    auto result = fn(tables);
    if (!result.ok()) {
      if (!t.python_file.empty()) {
        return DefinitionError(t.sql_loc, what + ": the function " + t.python_file + ":" +
                                              t.python_function +
                                              " failed: " + result.status().message());
      }
      return result.status().WithMessage(what,
                                         ": the function failed: ", result.status().message());
    }
    std::shared_ptr<arrow::Table> rows = *result;
    if (t.mode == TransformMode::kMerge && !t.order_by.empty()) {
      for (const auto& c : t.keys) {
        if (!rows->schema()->GetFieldByName(c)) {
          return arrow::Status::Invalid(what, ": the function's result lacks the key column '", c,
                                        "' (columns: ", JoinNames(rows->ColumnNames()), ")");
        }
      }
      if (!rows->schema()->GetFieldByName(t.order_by)) {
        return arrow::Status::Invalid(what, ": the function's result lacks the order_by column '",
                                      t.order_by, "' (columns: ", JoinNames(rows->ColumnNames()),
                                      ")");
      }
      ARROW_RETURN_NOT_OK(engine.LoadTable("__stratalake_result", "rows", TableReader(rows)));
      ARROW_ASSIGN_OR_RAISE(
          rows, engine.Query("SELECT * FROM __stratalake_result.rows " + DedupeClause(t)));
    }
    return rows;
  };
}

// A Python transformation of the definition files: its function run by
// options.python (or a subprocess), handed its inputs in declared order.
arrow::Result<RunResult> RunPythonTransformation(const repo::FeatureRepository& repo,
                                                 const Definitions& defs, const Transformation& t,
                                                 const RunOptions& options) {
  const PythonRunner runner = options.python ? options.python : PythonRunner(RunPythonWorker);
  TableFunction fn = [&](const std::map<std::string, std::shared_ptr<arrow::Table>>& tables)
      -> arrow::Result<std::shared_ptr<arrow::Table>> {
    std::vector<std::shared_ptr<arrow::Table>> ordered;
    for (const auto& in : t.inputs) {
      auto it = tables.find(TablePath(in));
      if (it == tables.end()) {
        // Its own output before the first run: an empty table is not known; say so.
        return arrow::Status::Invalid("input ", in, " was not read (it does not exist yet)");
      }
      ordered.push_back(it->second);
    }
    return runner(repo, t, ordered);
  };
  return RunWith(repo, defs, t, FunctionCompute(t, fn), options);
}

}  // namespace

arrow::Result<RunResult> RunTransformation(const repo::FeatureRepository& repo,
                                           const Definitions& defs, const std::string& name,
                                           const RunOptions& options) {
  const Transformation* t = defs.FindTransformation(name);
  if (!t) {
    ARROW_RETURN_NOT_OK(Order(defs, {name}).status());  // the unknown-name error
    return arrow::Status::KeyError("no transformation named '", name, "'");
  }
  if (!t->python_file.empty()) return RunPythonTransformation(repo, defs, *t, options);
  return RunWith(repo, defs, *t, SqlCompute(*t), options);
}

arrow::Result<RunResult> RunFunctionTransformation(const repo::FeatureRepository& repo,
                                                   const Transformation& tr,
                                                   const TableFunction& fn,
                                                   const RunOptions& options) {
  Transformation t = tr;
  t.output = TablePath(t.output);
  for (auto& in : t.inputs) in = TablePath(in);
  if (!t.sql.empty()) {
    return arrow::Status::Invalid("transformation '", t.name,
                                  "': a function transformation has no SQL");
  }
  if (t.inputs.empty()) {
    return arrow::Status::Invalid("transformation '", t.name,
                                  "': name the tables it reads (inputs), e.g. bronze.orders");
  }
  if (t.mode == TransformMode::kMerge && t.keys.empty()) {
    return arrow::Status::Invalid("transformation '", t.name,
                                  "': mode 'merge' needs keys (the columns that identify a row)");
  }
  const Compute compute = FunctionCompute(t, fn);
  ARROW_ASSIGN_OR_RAISE(auto defs, repo.LoadDefinitions());
  return RunWith(repo, defs, t, compute, options);
}

arrow::Result<std::vector<LineageEntry>> Lineage(const repo::FeatureRepository& repo,
                                                 const std::string& table, bool upstream) {
  std::vector<LineageEntry> out;
  std::set<std::pair<std::string, int64_t>> seen;
  // Table path -> its entries, newest first (each table's history read once).
  std::map<std::string, std::vector<LineageEntry>> cache;
  auto entries_of = [&](const std::string& path) -> arrow::Result<std::vector<LineageEntry>*> {
    auto it = cache.find(path);
    if (it != cache.end()) return &it->second;
    auto& list = cache[path];
    auto opened = delta::DeltaTable::Open(repo.TableUri(path));
    if (!opened.ok()) {
      if (HasErrorKind(opened.status(), ErrorKind::kTableNotFound) && path != TablePath(table)) {
        return &list;  // an upstream table that is gone: no lineage to add
      }
      return opened.status();
    }
    ARROW_ASSIGN_OR_RAISE(auto history, (*opened)->History());
    for (const auto& c : history) {
      if (!c.user_metadata) continue;
      auto rec = ParseRecord(*c.user_metadata);
      if (!rec) continue;
      LineageEntry e;
      e.table = path;
      e.version = c.version;
      e.timestamp_ms = c.timestamp;
      e.operation = c.operation;
      e.transformation = rec->first;
      e.query = rec->second.fingerprint;
      e.inputs = rec->second.inputs;
      e.read = rec->second.read;
      e.since = rec->second.since;
      list.push_back(std::move(e));
    }
    return &list;
  };
  const std::string path = TablePath(table);
  ARROW_ASSIGN_OR_RAISE(auto* own, entries_of(path));
  if (!upstream) return *own;
  // The newest entry, then what produced each input version it read (breadth first).
  std::vector<LineageEntry> queue;
  if (!own->empty()) queue.push_back(own->front());
  for (size_t i = 0; i < queue.size(); ++i) {
    const LineageEntry e = queue[i];
    if (!seen.insert({e.table, e.version}).second) continue;
    out.push_back(e);
    for (const auto& [in, version] : e.inputs) {
      ARROW_ASSIGN_OR_RAISE(auto* list, entries_of(in));
      for (const auto& x : *list) {
        if (x.version == version) queue.push_back(x);
      }
    }
  }
  return out;
}

arrow::Result<std::vector<RunResult>> RunPipeline(const repo::FeatureRepository& repo,
                                                  const Definitions& defs,
                                                  const std::vector<std::string>& names,
                                                  const RunOptions& options) {
  ARROW_ASSIGN_OR_RAISE(auto order, Order(defs, names));
  std::vector<RunResult> results;
  for (const auto* t : order) {
    ARROW_ASSIGN_OR_RAISE(auto r, RunTransformation(repo, defs, t->name, options));
    results.push_back(std::move(r));
  }
  return results;
}

}  // namespace stratalake::transform
