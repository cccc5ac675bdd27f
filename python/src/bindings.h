// The Python front end's shared pieces (python/src/*.cc): engine errors raised
// as stratalake._errors' classes, in Python's words, and tables across the
// boundary as Arrow C streams without copies.
#pragma once

#include <nanobind/nanobind.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

#include <arrow/api.h>

#include "stratalake/online.h"
#include "stratalake/repo.h"

namespace stratalake::transform {
struct PlannedRun;
}  // namespace stratalake::transform

namespace stratalake::python {

/// An engine error on its way to Python: the kind names the exception class.
struct EngineError : std::runtime_error {
  EngineError(std::string kind, std::string code, const std::string& message)
      : std::runtime_error(message), kind(std::move(kind)), code(std::move(code)) {}
  std::string kind;  // ErrorKind name ("TableNotFound") or ""
  std::string code;  // arrow status code ("Invalid", "IOError", "Cancelled", ...)
};

/// Maps EngineError to stratalake._errors.class_for(kind, code); once, at import.
void RegisterErrorTranslator();

/// A core message in Python's words: parameters and calls, not CLI flags.
std::string PythonMessage(const arrow::Status& st);

/// Throws `st` as an EngineError (worded by PythonMessage).
[[noreturn]] void Raise(const arrow::Status& st);

template <typename T>
T Check(arrow::Result<T> r) {
  if (!r.ok()) Raise(r.status());
  return std::move(r).ValueUnsafe();
}

void Check(const arrow::Status& st);

/// An ArrowArrayStream capsule (from `obj.__arrow_c_stream__()`) -> a table,
/// without copying the buffers; the GIL is released while reading.
std::shared_ptr<arrow::Table> ImportTable(nanobind::capsule capsule);

/// A reader or table -> an "arrow_array_stream" capsule for pyarrow.
nanobind::capsule ExportReader(std::shared_ptr<arrow::RecordBatchReader> reader);
nanobind::capsule ExportTable(std::shared_ptr<arrow::Table> table);

void BindInit(nanobind::module_& m);          // module_init.cc
void BindObjectStore(nanobind::module_& m);   // module_object_store.cc
void BindTransform(nanobind::module_& m);     // module_transform.cc
void BindSpark(nanobind::module_& m);         // module_spark.cc
void BindPipelinePlan(nanobind::module_& m);  // module_pipeline_plan.cc
void BindOnlineSst(nanobind::module_& m);     // module_online_sst.cc

/// The online store of `repo`, shared by every FeatureStore of this process
/// (the embedded store may be open in one process at a time); module.cc.
std::shared_ptr<online::OnlineStore> SharedOnlineStore(const repo::FeatureRepository& repo);

/// One run of a pipeline plan as the SDK's dict (name, output, mode, inputs,
/// upstream, stale, cause, reason); module_pipeline_plan.cc.
nanobind::dict PlannedRunDict(const transform::PlannedRun& p);

}  // namespace stratalake::python
