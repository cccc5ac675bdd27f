// Writes a Delta table with two commits through the installed StrataLake
// library, reads it back at both versions and prints what it finds:
//   consumer TABLE_DIR
#include <cstdio>
#include <memory>

#include <arrow/api.h>

#include "stratalake/delta.h"

namespace {

arrow::Status Run(const char* path) {
  using stratalake::delta::DeltaTable;
  auto schema =
      arrow::schema({arrow::field("id", arrow::int64()), arrow::field("name", arrow::utf8())});
  arrow::Int64Builder ids;
  arrow::StringBuilder names;
  ARROW_RETURN_NOT_OK(ids.AppendValues({1, 2, 3}));
  ARROW_RETURN_NOT_OK(names.AppendValues({"a", "b", "c"}));
  ARROW_ASSIGN_OR_RAISE(auto id_array, ids.Finish());
  ARROW_ASSIGN_OR_RAISE(auto name_array, names.Finish());
  auto rows = arrow::Table::Make(schema, {id_array, name_array});

  ARROW_ASSIGN_OR_RAISE(auto table, DeltaTable::ForPath(path));
  ARROW_ASSIGN_OR_RAISE(auto first, table->Write(rows, {}));
  ARROW_ASSIGN_OR_RAISE(auto second, table->Write(rows->Slice(0, 1), {}));
  ARROW_RETURN_NOT_OK(table->Delete("id = 2").status());

  stratalake::delta::ReadOptions latest;
  latest.filter = "id >= 1";
  ARROW_ASSIGN_OR_RAISE(auto now, table->Read(latest));
  stratalake::delta::ReadOptions v0;
  v0.version = first.version;
  ARROW_ASSIGN_OR_RAISE(auto then, table->Read(v0));
  std::printf("versions %lld %lld; rows at version 0: %lld; rows now: %lld\n",
              static_cast<long long>(first.version), static_cast<long long>(second.version),
              static_cast<long long>(then->num_rows()), static_cast<long long>(now->num_rows()));
  return arrow::Status::OK();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: consumer TABLE_DIR\n");
    return 2;
  }
  arrow::Status st = Run(argv[1]);
  if (!st.ok()) {
    std::fprintf(stderr, "error: %s\n", st.ToString().c_str());
    return 1;
  }
  return 0;
}
