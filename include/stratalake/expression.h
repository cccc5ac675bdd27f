// StrataLake's small SQL-like expression language, compiled to Arrow compute
// expressions. Used for `--filter`, `--where` (delete/update/replaceWhere),
// `--set` assignments, merge conditions and CHECK constraints.
//
// Grammar (keywords case-insensitive):
//   expr      := or
//   or        := and ( OR and )*
//   and       := not ( AND not )*
//   not       := NOT not | predicate
//   predicate := additive ( cmp additive
//                         | [NOT] IN '(' literal (',' literal)* ')'
//                         | [NOT] BETWEEN additive AND additive
//                         | IS [NOT] NULL
//                         | [NOT] LIKE 'pattern' )?
//   cmp       := = | == | != | <> | < | <= | > | >=
//   additive  := mult ( (+|-) mult )*
//   mult      := unary ( (*|/|%) unary )*
//   unary     := - unary | primary
//   primary   := literal | column | '(' expr ')' | function '(' [expr (',' expr)*] ')'
//              | CASE (WHEN expr THEN expr)+ [ELSE expr] END
//   function  := (case-insensitive; math functions compute in float64)
//                sqrt sin cos tan asin acos atan atan2(y, x) ln log(=ln) log10 log2 exp
//                pow(x, y) radians degrees abs sign floor ceil trunc
//                round(x[, digits]) (halves away from zero, as SQL)
//                coalesce(a, ...) nullif(a, b) if(cond, a, b) least(a, ...) greatest(a, ...)
//                bucket(x, b1, ..., bn): how many of the ascending literal boundaries
//                  are <= x (0..n, int64)
//                haversine(lat1, lon1, lat2, lon2): great-circle km between points
//                  in degrees (mean Earth radius 6371.0088 km)
//   literal   := integer | decimal/float (1.5, 1e3) | 'string' ('' escapes a quote)
//              | TRUE | FALSE | NULL | DATE 'YYYY-MM-DD'
//              | TIMESTAMP 'YYYY-MM-DD[ T]HH:MM:SS[.ffffff][Z|+HH:MM]'
//   column    := identifier ( '.' identifier )* | `back-quoted name`
//
// Columns resolve against the given schema: an exact match first, then a unique
// case-insensitive match (Delta column names are case-insensitive). A dotted name
// resolves first as one flat field name ("source.id" in merge conditions), then as
// a nested struct path. Literals compared with a column are cast to the column's
// type (so `ts >= '2024-01-01'` works on timestamp columns, `d = '2024-01-01'` on
// dates, `x = 1` on int8..uint64, float, double and decimal). SQL NULL semantics:
// comparisons with NULL yield NULL; callers that filter treat NULL as false.
//
// Thread-safety: the functions are pure and thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <arrow/compute/expression.h>
#include <arrow/result.h>
#include <arrow/type_fwd.h>

namespace stratalake {

/// Parse `text` into an expression bound-ready against `schema`.
///
/// Errors (arrow::Status::Invalid) name the problem and the position, e.g.
/// "filter 'x >> 1': unexpected '>' at position 3" or
/// "filter 'y = 1': unknown column 'y' (columns: a, b, c)".
arrow::Result<arrow::compute::Expression> ParseExpression(std::string_view text,
                                                          const arrow::Schema& schema);

/// As ParseExpression, for a value rather than a filter (on-demand features):
/// errors start "expression '...'" instead of "filter '...'".
arrow::Result<arrow::compute::Expression> ParseValueExpression(std::string_view text,
                                                               const arrow::Schema& schema);

/// True for an error of ParseExpression / ParseAssignments that names a column
/// `schema` does not have (rather than a syntax error): callers report it as a
/// schema mismatch.
bool IsUnknownColumnError(const arrow::Status& status);

/// One `column = value-expression` pair of an UPDATE ... SET clause.
struct Assignment {
  std::string column;  // the resolved (schema-spelled) top-level column name
  arrow::compute::Expression value;
};

/// Parse a comma-separated list of assignments: "a = a + 1, b = 'x', c = NULL".
/// The target column must exist in `schema`; the value expression may reference
/// any column of `schema`. Literal values are cast to the target column's type.
arrow::Result<std::vector<Assignment>> ParseAssignments(std::string_view text,
                                                        const arrow::Schema& schema);

/// The names of all columns that `expr` references (field refs), in first-seen order.
std::vector<std::string> ReferencedColumns(const arrow::compute::Expression& expr);

}  // namespace stratalake
