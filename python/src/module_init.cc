// stratalake._core.init: a new feature repository with the sample shop
// (include/stratalake/init.h), so that a pip-only user can start one without
// the CLI.
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>

#include <optional>
#include <string>

#include "bindings.h"
#include "stratalake/init.h"
#include "stratalake/status.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace stratalake::python {

namespace {

nb::dict Init(const std::string& dir, const std::string& project, int64_t customers, uint64_t seed,
              const std::string& template_name) {
  repo::InitOptions o;
  o.project = project;
  o.template_name = template_name;
  o.customers = customers;
  o.seed = seed;
  arrow::Result<repo::InitResult> r = arrow::Status::UnknownError("not run");
  {
    nb::gil_scoped_release release;
    r = repo::InitRepository(dir, o);
  }
  if (!r.ok()) Raise(r.status());
  nb::dict out;
  out["root"] = r->root;
  nb::list files;
  for (const auto& f : r->files_written) files.append(f);
  out["files_written"] = files;
  return out;
}

}  // namespace

void BindInit(nb::module_& m) {
  m.def("init", &Init, "dir"_a, "project"_a = "", "customers"_a = 1000, "seed"_a = 42,
        "template"_a = "shop",
        "Creates a feature repository with a sample's definitions and data (template 'shop' "
        "or 'markets').");
}

}  // namespace stratalake::python
