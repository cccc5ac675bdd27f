// stratalake._core's bulk load of the embedded online store by another engine
// (python/stratalake/spark.py): every Spark partition writes its winning rows as
// an SST file (online::OnlineSstWriter, encoded exactly as the store encodes a
// write), the driver ingests them all at once (online::IngestOnlineSstFiles);
// and a view's materialization watermark, read so that another engine's
// incremental run starts where the last run ended
// (online::ReadMaterializationWatermark).
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <arrow/api.h>

#include "bindings.h"
#include "stratalake/online.h"
#include "stratalake/repo.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace stratalake::python {

namespace {

// One partition's SST file: rows are added batch by batch, written at finish().
class PySstWriter {
 public:
  PySstWriter(const std::string& repo_path, const std::string& view, const std::string& path) {
    nb::gil_scoped_release release;
    auto repo = Check(repo::FeatureRepository::Open(repo_path));
    auto reg = Check(repo->registry());
    auto state = Check(reg->Load());
    writer_ = Check(online::OnlineSstWriter::Open(state, view, path));
  }

  int64_t Add(nb::capsule data) {
    auto t = ImportTable(std::move(data));
    nb::gil_scoped_release release;
    return Check(writer_->Add(t));
  }

  int64_t Finish() {
    nb::gil_scoped_release release;
    return Check(writer_->Finish());
  }

 private:
  std::unique_ptr<online::OnlineSstWriter> writer_;
};

void IngestOnlineSst(const std::string& repo_path, const std::string& view,
                     std::vector<std::string> files) {
  nb::gil_scoped_release release;
  auto repo = Check(repo::FeatureRepository::Open(repo_path));
  auto reg = Check(repo->registry());
  auto state = Check(reg->Load());
  auto store = SharedOnlineStore(*repo);
  Check(online::IngestOnlineSstFiles(*state, store.get(), view, files));
}

// {"source_version", "end_us", "source", "current"}, or None when no watermark is recorded.
nb::object MaterializationWatermark(const std::string& repo_path, const std::string& view) {
  std::optional<online::MaterializationWatermark> w;
  {
    nb::gil_scoped_release release;
    auto repo = Check(repo::FeatureRepository::Open(repo_path));
    w = Check(online::ReadMaterializationWatermark(*repo, view));
  }
  if (!w) return nb::none();
  nb::dict d;
  d["source_version"] = w->source_version;
  d["end_us"] = w->end_us;
  d["source"] = w->source;
  d["current"] = w->current;
  return d;
}

// Every (key, value) stored under `prefix`, in byte order (tests: the exact bytes two
// engines wrote).
nb::list ScanOnline(const std::string& repo_path, nb::bytes prefix) {
  std::vector<online::KeyValue> kvs;
  {
    std::string p(prefix.c_str(), prefix.size());
    nb::gil_scoped_release release;
    auto repo = Check(repo::FeatureRepository::Open(repo_path));
    auto store = SharedOnlineStore(*repo);
    kvs = Check(store->Scan(p));
  }
  nb::list out;
  for (const auto& kv : kvs) {
    out.append(nb::make_tuple(nb::bytes(kv.key.data(), kv.key.size()),
                              nb::bytes(kv.value.data(), kv.value.size())));
  }
  return out;
}

}  // namespace

void BindOnlineSst(nb::module_& m) {
  nb::class_<PySstWriter>(m, "OnlineSstWriter",
                          "One SST file of a feature view's rows for the embedded online store.")
      .def(nb::init<const std::string&, const std::string&, const std::string&>(), "repo_path"_a,
           "view"_a, "path"_a)
      .def("add", &PySstWriter::Add, "data"_a, "Encodes rows (as write_to_online_store does).")
      .def("finish", &PySstWriter::Finish,
           "Writes the file; returns the number of keys (0: no file).");
  m.def("ingest_online_sst", &IngestOnlineSst, "repo_path"_a, "view"_a, "files"_a,
        "Adds a view's SST files to the online store in one atomic step (newer wins).");
  m.def("scan_online", &ScanOnline, "repo_path"_a, "prefix"_a,
        "Every stored (key, value) under a key prefix, in byte order (tests, diagnostics).");
  m.def("materialization_watermark", &MaterializationWatermark, "repo_path"_a, "view"_a,
        "A view's materialization watermark, or None.");
}

}  // namespace stratalake::python
