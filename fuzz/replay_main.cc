// A main() for the fuzz targets built as ordinary programs (without libFuzzer):
//
//   fuzz_NAME_replay [--mutations N] FILE_OR_FOLDER...
//
// runs LLVMFuzzerTestOneInput once on every file named (or in a folder named),
// then, with --mutations N, on N mutants of each: bytes flipped, inserted,
// erased, a run repeated or the input cut short, chosen by a fixed-seed
// generator so that every run tries the same inputs. `make test` runs each
// target on its corpus (fuzz/corpus/NAME/: seeds and every input that once
// crashed) and on mutants of it: a short, blind but repeatable search on every
// build, beside `make fuzz`'s coverage-guided one. A crash aborts the program;
// the input that caused it is written first to ./crash-replay-NAME for the corpus.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

std::string Mutate(std::string s, std::mt19937_64& rng) {
  auto pick = [&](size_t n) { return n == 0 ? size_t{0} : static_cast<size_t>(rng() % n); };
  static const char kInteresting[] = "{}[]\":,\\\n\r\t 0-9eE.nulltruefalse\xff\xc3\x00";
  const int edits = 1 + static_cast<int>(rng() % 4);
  for (int e = 0; e < edits; ++e) {
    switch (rng() % 6) {
      case 0:  // flip a bit
        if (!s.empty()) s[pick(s.size())] ^= static_cast<char>(1u << (rng() % 8));
        break;
      case 1:  // insert a byte that matters to parsers
        s.insert(pick(s.size() + 1), 1, kInteresting[pick(sizeof kInteresting - 1)]);
        break;
      case 2:  // erase a run
        if (!s.empty()) {
          size_t at = pick(s.size());
          s.erase(at, 1 + pick(std::min<size_t>(16, s.size() - at)));
        }
        break;
      case 3:  // repeat a run (nesting, long lines)
        if (!s.empty()) {
          size_t at = pick(s.size());
          std::string run = s.substr(at, 1 + pick(8));
          size_t times = 1 + pick(64);
          std::string rep;
          for (size_t i = 0; i < times; ++i) rep += run;
          s.insert(at, rep);
        }
        break;
      case 4:  // cut short
        s.resize(pick(s.size() + 1));
        break;
      default:  // overwrite a byte at random
        if (!s.empty()) s[pick(s.size())] = static_cast<char>(rng());
        break;
    }
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::filesystem::path> files;
  long mutations = 0;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--mutations" && i + 1 < argc) {
      mutations = std::strtol(argv[++i], nullptr, 10);
      continue;
    }
    std::filesystem::path p(arg);
    if (std::filesystem::is_directory(p)) {
      for (const auto& e : std::filesystem::directory_iterator(p)) {
        if (e.is_regular_file()) files.push_back(e.path());
      }
    } else {
      files.push_back(p);
    }
  }
  std::sort(files.begin(), files.end());
  const std::string name = std::filesystem::path(argc > 0 ? argv[0] : "replay").filename();
  auto run = [&](const std::string& data) {
    // Written before the run, removed after: what is left names a crash's input.
    std::ofstream("crash-" + name, std::ios::binary | std::ios::trunc) << data;
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(data.data()), data.size());
  };
  std::mt19937_64 rng(20261207);
  long inputs = 0;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "cannot read %s\n", f.c_str());
      return 1;
    }
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    run(data);
    ++inputs;
    for (long m = 0; m < mutations; ++m, ++inputs) run(Mutate(data, rng));
  }
  std::filesystem::remove("crash-" + name);
  std::printf("%s: %zu corpus files, %ld inputs run\n", name.c_str(), files.size(), inputs);
  return 0;
}
