// The command groups of the `stratalake` CLI, one file each, and what they
// share. Every command is a function from parsed Args to a Status (usage
// errors as cli::UsageError); main.cc only finds the command and maps the
// result to an exit code.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "args.h"

namespace stratalake::transform {
struct PlannedRun;
}  // namespace stratalake::transform

namespace stratalake::cli {

/// create, write, read, merge, delete, update, history, describe, files,
/// restore, vacuum, optimize, checkpoint, cleanup-log, set-property
/// (table_cmds.cc; also as `stratalake table COMMAND`).
std::vector<Command> TableCommands();
/// The Delta table commands' help (`stratalake table --help`).
const std::string& TableUsage();
/// init, plan, apply, entities, sources, feature-views, feature-services,
/// registry, tables (repo_cmds.cc).
std::vector<Command> RepoCommands();
std::vector<Command> IngestCommands();     // ingest (ingest_cmds.cc)
std::vector<Command> RetrievalCommands();  // get-historical, datasets (retrieval_cmds.cc)
/// materialize, materialize-incremental, get-online, push (online_cmds.cc).
std::vector<Command> OnlineCommands();
std::vector<Command> ServeCommands();   // serve (serve_cmd.cc)
std::vector<Command> FeastCommands();   // serve-offline, import-feast (feast_cmds.cc)
std::vector<Command> StreamCommands();  // stream, stream produce (stream_cmds.cc)
/// stream produce-sample (sample_cmds.cc).
arrow::Status CmdProduceSample(const Args& a);
/// sql, run (pipeline_cmds.cc).
std::vector<Command> PipelineCommands();

// ---- shared by the feature-repository commands (common.cc) --------------------

/// A repository command: takes --repo DIR besides `options` and `flags`; its
/// help is "usage: USAGE\n\nSUMMARY\n\nExample:\n  EXAMPLE\n".
Command RepoCommand(std::string name, std::string usage, std::string summary, std::string example,
                    std::set<std::string> options, std::set<std::string> flags,
                    std::function<arrow::Status(const Args&)> run);

/// Runs `argv` (argv[0] a path) and returns what it printed on stdout; its
/// stderr goes to ours; *exit_code gets its exit status (feast_cmds.cc).
arrow::Result<std::string> RunCapture(const std::vector<std::string>& argv, int* exit_code);
/// Runs a job of the Spark engine: `PYTHON -m stratalake.spark JOB_JSON` (the
/// package's Python: --spark-python, $STRATALAKE_PYTHON, else .venv/bin/python
/// here, above, or beside this build, else python3 on PATH), and prints its
/// result: the JSON with --json, else its "summary" (spark_cmd.cc).
arrow::Status RunSparkJob(const Args& a, const std::string& job_json);

/// --repo DIR, default ".".
std::string RepoDir(const Args& a);
/// The integer value of option `key`, or `dflt` when absent; a usage error
/// ("KEY must be an integer, not 'X'") when it is not one.
arrow::Result<int64_t> IntOpt(const Args& a, const std::string& key, int64_t dflt);

/// ms since the epoch as "2026-08-01T00:00:00Z".
std::string UtcTime(int64_t ms);
/// 1536 -> "1.5 KiB".
std::string HumanBytes(int64_t bytes);
/// Prints rows as an aligned text table under `header`.
void PrintRows(const std::vector<std::string>& header,
               const std::vector<std::vector<std::string>>& rows);
/// Canonical JSON as YAML for humans (empty values left out).
std::string JsonToYaml(const std::string& json);

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;
void JStr(JsonWriter& w, const std::string& s);
/// Writes canonical JSON text as a nested value.
void JRaw(JsonWriter& w, const std::string& json);
/// Prints the buffer and a newline on stdout.
void Emit(const rapidjson::StringBuffer& buf);
/// One run of a pipeline plan as a JSON object (name, output, mode, inputs,
/// upstream, [stale,] cause, reason): `run --plan --json` and `plan --json`
/// (pipeline_cmds.cc).
void WritePlannedRun(JsonWriter& w, const transform::PlannedRun& p, bool with_stale);

}  // namespace stratalake::cli
