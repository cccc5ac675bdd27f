// "Did you mean ...?": the candidates nearest to a mistyped name, for messages.
#pragma once

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

namespace stratalake {

/// Levenshtein distance between two byte strings.
inline size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

/// Up to three candidates within max(2, |word|/2) edits of `word`, nearest
/// first (ties in the candidates' order; none more than one edit behind the
/// nearest).
inline std::vector<std::string> ClosestNames(const std::string& word,
                                             const std::vector<std::string>& candidates) {
  const size_t most = std::max<size_t>(2, word.size() / 2);
  std::vector<std::pair<size_t, std::string>> scored;
  for (const auto& c : candidates) {
    size_t d = EditDistance(word, c);
    if (d <= most) scored.emplace_back(d, c);
  }
  std::stable_sort(scored.begin(), scored.end(),
                   [](const auto& x, const auto& y) { return x.first < y.first; });
  std::vector<std::string> out;
  for (const auto& [d, c] : scored) {
    if (out.size() == 3 || d > scored.front().first + 1) break;
    out.push_back(c);
  }
  return out;
}

}  // namespace stratalake
