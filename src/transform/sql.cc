// ReferencedTables and RunSql: SQL over the repository's Delta tables.
#include <algorithm>
#include <cctype>
#include <set>

#include <arrow/api.h>

#include "stratalake/delta.h"
#include "stratalake/status.h"
#include "stratalake/transform.h"

namespace stratalake::transform {

namespace {

const std::set<std::string>& Layers() {
  static const std::set<std::string> layers = {"bronze", "silver", "gold", "datasets",
                                               "quarantine"};
  return layers;
}

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

struct Token {
  enum Kind { kIdent, kQuoted, kDot, kOpenParen, kOther } kind;
  std::string text;
};

bool IdentStart(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' ||
         static_cast<unsigned char>(c) >= 0x80;
}
bool IdentChar(char c) {
  return IdentStart(c) || std::isdigit(static_cast<unsigned char>(c)) || c == '$';
}

// SQL text -> identifiers, dots and parentheses; literals, comments and
// everything else become kOther (literals and comments are skipped whole).
std::vector<Token> Tokenize(const std::string& sql) {
  std::vector<Token> out;
  size_t i = 0;
  const size_t n = sql.size();
  while (i < n) {
    char c = sql[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (c == '-' && i + 1 < n && sql[i + 1] == '-') {
      while (i < n && sql[i] != '\n') ++i;
    } else if (c == '/' && i + 1 < n && sql[i + 1] == '*') {
      size_t end = sql.find("*/", i + 2);
      i = end == std::string::npos ? n : end + 2;
    } else if (c == '\'') {
      for (++i; i < n; ++i) {
        if (sql[i] == '\'') {
          if (i + 1 < n && sql[i + 1] == '\'') {
            ++i;
          } else {
            break;
          }
        }
      }
      ++i;
      out.push_back({Token::kOther, ""});
    } else if (c == '"') {
      std::string text;
      for (++i; i < n; ++i) {
        if (sql[i] == '"') {
          if (i + 1 < n && sql[i + 1] == '"') {
            text += '"';
            ++i;
          } else {
            break;
          }
        } else {
          text += sql[i];
        }
      }
      ++i;
      out.push_back({Token::kQuoted, text});
    } else if (IdentStart(c)) {
      size_t start = i;
      while (i < n && IdentChar(sql[i])) ++i;
      out.push_back({Token::kIdent, sql.substr(start, i - start)});
    } else if (c == '.') {
      ++i;
      out.push_back({Token::kDot, "."});
    } else if (c == '(') {
      ++i;
      out.push_back({Token::kOpenParen, "("});
    } else {
      ++i;
      out.push_back({Token::kOther, std::string(1, c)});
    }
  }
  return out;
}

bool IsName(const Token& t) { return t.kind == Token::kIdent || t.kind == Token::kQuoted; }
std::string NameOf(const Token& t) { return t.kind == Token::kIdent ? Lower(t.text) : t.text; }

}  // namespace

std::vector<std::string> ReferencedTables(const std::string& sql) {
  std::vector<Token> toks = Tokenize(sql);
  std::set<std::string> found;
  for (size_t i = 0; i + 2 < toks.size(); ++i) {
    if (!IsName(toks[i]) || toks[i + 1].kind != Token::kDot || !IsName(toks[i + 2])) continue;
    if (i > 0 && toks[i - 1].kind == Token::kDot) continue;  // catalog.schema.table: not ours
    if (i + 3 < toks.size() && toks[i + 3].kind == Token::kOpenParen) continue;  // a function
    const std::string layer = NameOf(toks[i]);
    if (!Layers().count(layer)) continue;
    found.insert(layer + "/" + NameOf(toks[i + 2]));
  }
  return {found.begin(), found.end()};
}

std::vector<std::string> ProjectedColumns(const std::string& sql, const arrow::Schema& schema) {
  std::vector<Token> toks = Tokenize(sql);
  std::set<std::string> names;
  bool star = false;
  for (size_t i = 0; i < toks.size(); ++i) {
    const Token& t = toks[i];
    if (IsName(t)) {
      names.insert(Lower(t.text));
      // COLUMNS(...) selects columns by pattern or lambda.
      if (t.kind == Token::kIdent && Lower(t.text) == "columns" && i + 1 < toks.size() &&
          toks[i + 1].kind == Token::kOpenParen) {
        star = true;
      }
    } else if (t.kind == Token::kOther && t.text == "*" && i > 0) {
      // `SELECT *`, `DISTINCT *`, `, *`, `t.*`: every column. (`count(*)` and
      // `a * b` are not.)
      const Token& prev = toks[i - 1];
      const std::string p = prev.kind == Token::kIdent ? Lower(prev.text) : "";
      if (prev.kind == Token::kDot || (prev.kind == Token::kOther && prev.text == ",") ||
          p == "select" || p == "distinct" || p == "all" || p == "on") {
        star = true;
      }
    }
  }
  std::vector<std::string> out;
  for (const auto& f : schema.fields()) {
    if (star || names.count(Lower(f->name()))) out.push_back(f->name());
  }
  if (out.empty() && schema.num_fields() > 0) out.push_back(schema.field(0)->name());
  return out;
}

arrow::Result<QueryResult> RunSql(const repo::FeatureRepository& repo, const std::string& sql,
                                  const std::map<std::string, int64_t>& versions) {
  ARROW_ASSIGN_OR_RAISE(auto engine, SqlEngine::Open());
  QueryResult result;
  for (const auto& path : ReferencedTables(sql)) {
    auto table = delta::DeltaTable::Open(repo.TableUri(path));
    // Not a table of this repository: DuckDB says so below.
    if (!table.ok() && HasErrorKind(table.status(), ErrorKind::kTableNotFound)) continue;
    ARROW_RETURN_NOT_OK(table.status());
    delta::ReadOptions ro;
    auto it = versions.find(path);
    if (it != versions.end()) ro.version = it->second;
    auto snapshot = (*table)->Load(ro);
    if (!snapshot.ok()) {
      return snapshot.status().WithMessage("cannot read table ", path, ": ",
                                           snapshot.status().message());
    }
    // Read when the query scans it: only the columns it uses, at this version.
    const auto slash = path.find('/');
    result.inputs[path] = (*snapshot)->version();
    ARROW_RETURN_NOT_OK(engine->AttachDeltaTable(
        path.substr(0, slash), path.substr(slash + 1),
        std::shared_ptr<delta::DeltaTable>(std::move(*table)), std::move(*snapshot)));
  }
  auto table = engine->Query(sql);
  if (!table.ok()) {
    std::string msg = table.status().message();
    if (msg.find("does not exist") != std::string::npos) {
      auto tables = repo.ListTables();
      if (tables.ok()) {
        std::string names;
        for (const auto& t : *tables) {
          std::string n = t.name;
          std::replace(n.begin(), n.end(), '/', '.');
          names += (names.empty() ? "" : ", ") + n;
        }
        msg += "\n(tables of this repository: " + (names.empty() ? "none yet" : names) +
               "; name them LAYER.TABLE, e.g. bronze.orders)";
      }
    }
    return arrow::Status::Invalid(msg);
  }
  result.table = std::move(*table);
  return result;
}

}  // namespace stratalake::transform
