// Transformations: planning (dependency order, staleness) and runs (one Delta
// commit each, recording the input versions read).
#include <algorithm>
#include <cctype>
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

// What decides a result besides the inputs: the query and how it lands.
std::string Fingerprint(const Transformation& t) {
  std::string text = t.sql + '\x1f' + registry::TransformModeName(t.mode) + '\x1f' + t.order_by;
  for (const auto& k : t.keys) text += '\x1f' + k;
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
  std::map<std::string, int64_t> inputs;
};

std::string RecordJson(const std::string& name, const RunRecord& r) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.StartObject();
  w.Key(kMetadataKey);
  w.StartObject();
  w.Key("transformation");
  w.String(name.c_str());
  w.Key("query");
  w.String(r.fingerprint.c_str());
  w.Key("inputs");
  w.StartObject();
  for (const auto& [path, v] : r.inputs) {
    w.Key(path.c_str());
    w.Int64(v);
  }
  w.EndObject();
  w.EndObject();
  w.EndObject();
  return buf.GetString();
}

// The record of `name`'s latest run into `table`, if any.
arrow::Result<std::optional<RunRecord>> LastRun(const delta::DeltaTable& table,
                                                const std::string& name) {
  ARROW_ASSIGN_OR_RAISE(auto history, table.History());
  // History lists the newest commit first.
  for (const auto& c : history) {
    if (!c.user_metadata) continue;
    rapidjson::Document doc;
    doc.Parse(c.user_metadata->c_str());
    if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember(kMetadataKey)) continue;
    const auto& m = doc[kMetadataKey];
    if (!m.IsObject() || !m.HasMember("transformation") || !m["transformation"].IsString() ||
        m["transformation"].GetString() != name) {
      continue;
    }
    RunRecord r;
    if (m.HasMember("query") && m["query"].IsString()) r.fingerprint = m["query"].GetString();
    if (m.HasMember("inputs") && m["inputs"].IsObject()) {
      for (auto it = m["inputs"].MemberBegin(); it != m["inputs"].MemberEnd(); ++it) {
        if (it->value.IsInt64()) r.inputs[it->name.GetString()] = it->value.GetInt64();
      }
    }
    return r;
  }
  return std::nullopt;
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

std::vector<std::string> InputsOf(const Transformation& t) {
  std::vector<std::string> in;
  for (auto& p : ReferencedTables(t.sql)) {
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

// Why `t` would run ("" when up to date).
arrow::Result<std::string> StaleReason(const repo::FeatureRepository& repo,
                                       const Transformation& t) {
  auto table = delta::DeltaTable::Open(repo.TableUri(t.output));
  if (!table.ok() && HasErrorKind(table.status(), ErrorKind::kTableNotFound)) return "never run";
  ARROW_RETURN_NOT_OK(table.status());
  ARROW_ASSIGN_OR_RAISE(auto last, LastRun(**table, t.name));
  if (!last) return "never run";
  if (last->fingerprint != Fingerprint(t)) return "query changed";
  for (const auto& in : InputsOf(t)) {
    ARROW_ASSIGN_OR_RAISE(auto now, LatestVersion(repo, in));
    if (!now) return in + " does not exist yet";
    auto it = last->inputs.find(in);
    if (it == last->inputs.end()) return in + " is read for the first time";
    if (it->second != *now) {
      return in + " changed: version " + std::to_string(it->second) + " -> " + std::to_string(*now);
    }
  }
  return "";
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

struct LoadedInput {
  std::string path;
  int64_t version = -1;
};

}  // namespace

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
    ARROW_ASSIGN_OR_RAISE(p.reason, StaleReason(repo, *t));
    if (p.reason.empty()) {
      for (const auto& u : p.upstream) {
        if (will_run.count(u)) {
          p.reason = "upstream " + u + " runs first";
          break;
        }
      }
    }
    p.stale = !p.reason.empty();
    if (p.stale) {
      will_run.insert(p.name);
    } else {
      p.reason = "up to date";
    }
    plan.push_back(std::move(p));
  }
  return plan;
}

arrow::Result<RunResult> RunTransformation(const repo::FeatureRepository& repo,
                                           const Definitions& defs, const std::string& name,
                                           const RunOptions& options) {
  const Transformation* t = defs.FindTransformation(name);
  if (!t) {
    ARROW_RETURN_NOT_OK(Order(defs, {name}).status());  // the unknown-name error
    return arrow::Status::KeyError("no transformation named '", name, "'");
  }
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
  struct Input {
    std::string path;
    std::unique_ptr<delta::DeltaTable> table;
    std::shared_ptr<const delta::Snapshot> snapshot;
  };
  std::vector<Input> inputs;
  for (const auto& path : ReferencedTables(t->sql)) {
    auto table = delta::DeltaTable::Open(repo.TableUri(path));
    if (!table.ok() && HasErrorKind(table.status(), ErrorKind::kTableNotFound)) {
      if (path == t->output) continue;  // reads its own output, which a first run creates
      return DefinitionError(t->sql_loc, what + ": reads " + path +
                                             ", which does not exist yet (run what writes it "
                                             "first, or ingest it)");
    }
    ARROW_RETURN_NOT_OK(table.status());
    Input in{path, std::move(*table), nullptr};
    ARROW_ASSIGN_OR_RAISE(in.snapshot, in.table->Latest());
    if (path != t->output) out.inputs[path] = in.snapshot->version();
    inputs.push_back(std::move(in));
  }

  const bool unchanged_query = last && last->fingerprint == fingerprint;
  if (!options.full_refresh && unchanged_query && last->inputs == out.inputs) {
    out.noop = true;
    out.version = target_snap->version();
    out.detail = "up to date";
    return out;
  }

  // Append and merge modes read only what their one input gained since the last
  // run (merge falls back to the whole input when rows of it were rewritten).
  const bool incremental = t->mode != TransformMode::kFullRefresh && !options.full_refresh &&
                           unchanged_query && out.inputs.size() == 1;
  ARROW_ASSIGN_OR_RAISE(auto engine, SqlEngine::Open());
  for (auto& in : inputs) {
    std::shared_ptr<arrow::RecordBatchReader> reader;
    std::optional<int64_t> since;  // incremental: the version the last run read
    if (incremental && in.path != t->output) {
      auto prev = last->inputs.find(in.path);
      if (prev != last->inputs.end()) since = prev->second;
    }
    std::vector<delta::AddFile> added;
    if (since) {
      // Files are compared by path and deletion vector: a file gone, or one with a
      // new deletion vector, means rows were updated or deleted.
      ARROW_ASSIGN_OR_RAISE(auto before, in.table->AtVersion(*since));
      auto key = [](const delta::AddFile& f) {
        return f.path + '\x1f' + (f.deletion_vector ? f.deletion_vector->path_or_inline_dv : "");
      };
      std::set<std::string> old_files, new_files;
      for (const auto& f : before->files()) old_files.insert(key(f));
      for (const auto& f : in.snapshot->files()) new_files.insert(key(f));
      const bool rewritten =
          !std::includes(new_files.begin(), new_files.end(), old_files.begin(), old_files.end());
      if (rewritten && t->mode == TransformMode::kAppend) {
        return arrow::Status::Invalid(
            t->loc.ToString(), ": ", what, ": append mode reads only the rows ", in.path,
            " gained since its last run (version ", *since,
            "), but rows were updated, deleted or rewritten up to version ", in.snapshot->version(),
            "; run it with --full-refresh to recompute the table");
      }
      if (rewritten) {
        since.reset();  // merge: upsert from the whole input
      } else {
        for (const auto& f : in.snapshot->files()) {
          if (!old_files.count(key(f))) added.push_back(f);
        }
      }
    }
    if (since) {
      std::vector<int> fields(in.snapshot->schema()->num_fields());
      for (size_t i = 0; i < fields.size(); ++i) fields[i] = static_cast<int>(i);
      ARROW_ASSIGN_OR_RAISE(
          reader, delta::MakeFileByFileReader(in.table->filesystem(), in.snapshot, std::move(added),
                                              std::move(fields), std::nullopt));
    } else {
      ARROW_ASSIGN_OR_RAISE(reader, in.table->Scan(in.snapshot, delta::ReadOptions{}));
    }
    const auto slash = in.path.find('/');
    ARROW_RETURN_NOT_OK(
        engine->LoadTable(in.path.substr(0, slash), in.path.substr(slash + 1), reader));
  }

  std::string sql = StripTrailingSemicolons(t->sql);
  if (t->mode == TransformMode::kMerge && !t->order_by.empty()) {
    std::string keys;
    for (const auto& k : t->keys) keys += (keys.empty() ? "" : ", ") + Quote(k);
    sql = "SELECT * FROM (" + sql + "\n) QUALIFY row_number() OVER (PARTITION BY " + keys +
          " ORDER BY " + Quote(t->order_by) + " DESC NULLS LAST) = 1";
  }
  auto result = engine->Query(sql);
  if (!result.ok()) {
    return DefinitionError(t->sql_loc, what + ": the query failed: " + result.status().message());
  }
  ARROW_ASSIGN_OR_RAISE(auto rows, ConformToDeclared(*t, *result));
  out.rows = rows->num_rows();

  RunRecord record{fingerprint, out.inputs};
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
    if (t->mode == TransformMode::kMerge && exists) {
      out.detail = "merged: " + std::to_string(r->metrics["numTargetRowsInserted"]) +
                   " inserted, " + std::to_string(r->metrics["numTargetRowsUpdated"]) + " updated";
    }
    return arrow::Status::OK();
  };
  if (t->mode == TransformMode::kMerge && exists) {
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
  const bool replace = t->mode == TransformMode::kFullRefresh || (options.full_refresh && exists);
  wo.mode = replace ? delta::WriteMode::kOverwrite : delta::WriteMode::kAppend;
  wo.overwrite_schema = replace && exists;
  wo.partition_by = t->partition_by;
  wo.create.description =
      t->description.empty() ? std::nullopt : std::optional<std::string>(t->description);
  wo.txn = txn;
  wo.user_metadata = metadata;
  ARROW_RETURN_NOT_OK(landed(target->Write(rows, wo)));
  out.detail = replace ? "replaced" : "appended";
  if (!exists) out.detail = "created";
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
