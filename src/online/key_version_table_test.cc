#include "online/key_version_table.h"

#include <cstring>
#include <map>
#include <random>
#include <string>

#include <gtest/gtest.h>

namespace stratalake::online {
namespace {

using Prefix = KeyVersionTable::Prefix;

Prefix MakePrefix(uint64_t v) {
  Prefix p{};
  for (int i = 0; i < 8; ++i) p[8 + i] = static_cast<char>(v >> (56 - 8 * i));  // big-endian
  return p;
}

std::map<std::string, Prefix> Contents(const KeyVersionTable& t) {
  std::map<std::string, Prefix> out;
  t.ForEach([&](std::string_view k, const Prefix& p) {
    EXPECT_TRUE(out.emplace(std::string(k), p).second) << "key listed twice: " << k;
  });
  return out;
}

TEST(KeyVersionTableTest, KeepsTheNewestPrefixAndErasesOnlyWhenCovered) {
  KeyVersionTable t;
  EXPECT_TRUE(t.empty());
  EXPECT_EQ(t.Find("a"), nullptr);
  EXPECT_FALSE(t.EraseIfNotNewerThan("a", KeyVersionTable::Hash("a"), MakePrefix(9).data()));
  t.NoteNewest("a", MakePrefix(5).data());
  t.NoteNewest("a", MakePrefix(3).data());  // older: ignored
  t.NoteNewest(std::string("b\0c", 3), MakePrefix(0x80).data());
  ASSERT_NE(t.Find("a"), nullptr);
  EXPECT_EQ(*t.Find("a"), MakePrefix(5));
  EXPECT_EQ(*t.Find(std::string("b\0c", 3)), MakePrefix(0x80));
  EXPECT_EQ(t.Find("b"), nullptr);  // keys are compared byte for byte
  EXPECT_EQ(t.size(), 2u);
  // Bytes compare unsigned: 0x80 is newer than 0x7f.
  EXPECT_FALSE(t.EraseIfNotNewerThan(std::string("b\0c", 3), KeyVersionTable::Hash({"b\0c", 3}),
                                     MakePrefix(0x7f).data()));
  EXPECT_TRUE(t.EraseIfNotNewerThan("a", KeyVersionTable::Hash("a"), MakePrefix(5).data()));
  EXPECT_EQ(t.Find("a"), nullptr);
  EXPECT_EQ(t.size(), 1u);
  t.NoteNewest("a", MakePrefix(1).data());  // back, in the tombstone's slot
  EXPECT_EQ(*t.Find("a"), MakePrefix(1));
  t.Compact();
  EXPECT_EQ(Contents(t), (std::map<std::string, Prefix>{
                             {"a", MakePrefix(1)}, {std::string("b\0c", 3), MakePrefix(0x80)}}));
  t.Clear();
  EXPECT_TRUE(t.empty());
  EXPECT_TRUE(Contents(t).empty());
  EXPECT_EQ(t.Find("a"), nullptr);
}

TEST(KeyVersionTableTest, RandomOperationsMatchAModel) {
  std::mt19937_64 rng(42);
  KeyVersionTable t;
  std::map<std::string, Prefix> model;
  auto key = [&] { return "k" + std::to_string(rng() % 3000); };
  // Prefixes order as unsigned bytes (std::array<char> would compare signed chars).
  auto less = [](const Prefix& a, const Prefix& b) {
    return std::memcmp(a.data(), b.data(), a.size()) < 0;
  };
  for (int step = 0; step < 200000; ++step) {
    std::string k = key();
    Prefix p = MakePrefix(rng() % 1000);
    switch (rng() % 10) {
      case 0:
      case 1:
      case 2:
      case 3: {
        t.NoteNewest(k, p.data());
        auto [it, added] = model.emplace(k, p);
        if (!added && less(it->second, p)) it->second = p;
        break;
      }
      case 4:
      case 5:
      case 6: {
        bool erased = t.EraseIfNotNewerThan(k, KeyVersionTable::Hash(k), p.data());
        auto it = model.find(k);
        bool want = it != model.end() && !less(p, it->second);
        ASSERT_EQ(erased, want) << step;
        if (want) model.erase(it);
        break;
      }
      case 7:
      case 8: {
        const Prefix* got = t.Find(k);
        auto it = model.find(k);
        ASSERT_EQ(got != nullptr, it != model.end()) << step;
        if (got) {
          ASSERT_EQ(*got, it->second) << step;
        }
        break;
      }
      default:
        if (rng() % 100 == 0) t.Compact();
        if (rng() % 5000 == 0) {
          t.Clear();
          model.clear();
        }
    }
    ASSERT_EQ(t.size(), model.size()) << step;
  }
  EXPECT_EQ(Contents(t), model);
}

TEST(KeyVersionTableTest, ReserveAndGrowthKeepEveryKey) {
  KeyVersionTable t;
  t.Reserve(10);
  for (int i = 0; i < 100000; ++i) t.NoteNewest("key" + std::to_string(i), MakePrefix(i).data());
  EXPECT_EQ(t.size(), 100000u);
  for (int i = 0; i < 100000; i += 997) {
    const Prefix* p = t.Find("key" + std::to_string(i));
    ASSERT_NE(p, nullptr) << i;
    EXPECT_EQ(*p, MakePrefix(i));
  }
  // Erase most, then compact: what is left is intact.
  for (int i = 0; i < 100000; ++i) {
    if (i % 10 != 0) {
      std::string k = "key" + std::to_string(i);
      ASSERT_TRUE(t.EraseIfNotNewerThan(k, KeyVersionTable::Hash(k), MakePrefix(i).data()));
    }
  }
  t.Compact();
  EXPECT_EQ(t.size(), 10000u);
  auto left = Contents(t);
  ASSERT_EQ(left.size(), 10000u);
  for (const auto& [k, p] : left) EXPECT_EQ(p, MakePrefix(std::stoi(k.substr(3)))) << k;
}

}  // namespace
}  // namespace stratalake::online
