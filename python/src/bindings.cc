// The Python front end's shared pieces (bindings.h).
#include "bindings.h"

#include <nanobind/stl/string.h>

#include <cstdlib>

#include <arrow/c/abi.h>
#include <arrow/c/bridge.h>

#include "stratalake/status.h"

namespace nb = nanobind;

namespace stratalake::python {

void RegisterErrorTranslator() {
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const EngineError& e) {
      nb::object cls = nb::module_::import_("stratalake._errors").attr("class_for")(e.kind, e.code);
      PyErr_SetString(cls.ptr(), e.what());
    }
  });
}

// An engine error on its way to Python: the kind names the exception class.

// A core message in Python's words: parameters and calls, not CLI flags.
std::string PythonMessage(const arrow::Status& st) {
  return RewordMessage(st, [](Term t) -> std::string {
    switch (t) {
      case Term::kRepo:
        return "`FeatureStore(repo_path=...)`";
      case Term::kInit:
        return "`stratalake.init(DIR)`";
      case Term::kApply:
        return "`store.apply()`";
      case Term::kPlan:
        return "`store.plan()`";
      case Term::kMaterialize:
        return "`store.materialize(...)` or `store.materialize_incremental(...)`";
      case Term::kTimestampColumn:
        return "`timestamp_column=`";
      case Term::kFullFeatureNames:
        return "`full_feature_names=True`";
      case Term::kQuarantine:
        return "`quarantine=True`";
      case Term::kMergeKeys:
        return "`on=[...]`";
      case Term::kWriteMergeSchema:
        return "`schema_mode=\"merge\"`";
      case Term::kMergeMergeSchema:
        return "`merge_schema=True`";
    }
    return Mention(t);
  });
}

[[noreturn]] void Raise(const arrow::Status& st) {
  const StrataLakeErrorDetail* d = GetErrorDetail(st);
  throw EngineError(d ? ErrorKindName(d->kind()) : "", st.CodeAsString(), PythonMessage(st));
}

void Check(const arrow::Status& st) {
  if (!st.ok()) Raise(st);
}

// ---- Arrow across the boundary ----------------------------------------------------

// An ArrowArrayStream capsule (from `obj.__arrow_c_stream__()`) -> a table,
// without copying the buffers. The GIL is released while reading (pyarrow
// takes it again itself where its producers need it).
std::shared_ptr<arrow::Table> ImportTable(nb::capsule capsule) {
  auto* stream =
      static_cast<ArrowArrayStream*>(PyCapsule_GetPointer(capsule.ptr(), "arrow_array_stream"));
  if (!stream) throw nb::python_error();
  std::shared_ptr<arrow::Table> table;
  {
    nb::gil_scoped_release release;
    auto reader = Check(arrow::ImportRecordBatchReader(stream));
    table = Check(reader->ToTable());
  }
  return table;
}

namespace {

void ReleaseStreamCapsule(void* p) noexcept {
  auto* stream = static_cast<ArrowArrayStream*>(p);
  if (stream->release) stream->release(stream);
  std::free(stream);
}

}  // namespace

// A reader -> an "arrow_array_stream" capsule for pyarrow.RecordBatchReader.
nb::capsule ExportReader(std::shared_ptr<arrow::RecordBatchReader> reader) {
  auto* stream = static_cast<ArrowArrayStream*>(std::malloc(sizeof(ArrowArrayStream)));
  stream->release = nullptr;
  arrow::Status st = arrow::ExportRecordBatchReader(std::move(reader), stream);
  if (!st.ok()) {
    std::free(stream);
    Raise(st);
  }
  return nb::capsule(stream, "arrow_array_stream", &ReleaseStreamCapsule);
}

nb::capsule ExportTable(std::shared_ptr<arrow::Table> table) {
  return ExportReader(std::make_shared<arrow::TableBatchReader>(std::move(table)));
}

}  // namespace stratalake::python
