// Messages that mention front-end terms: the core's neutral words, each front
// end's rewording.
#include "stratalake/status.h"

#include <gtest/gtest.h>

#include "common/errors.h"

namespace stratalake {
namespace {

std::string Cli(Term t) { return t == Term::kQuarantine ? "--quarantine" : "--repo DIR"; }

TEST(Status, MentionsAreNeutralAndReworded) {
  arrow::Status st = MakeError(arrow::StatusCode::Invalid, ErrorKind::kDataRejected,
                               "fix these rows, or pass " + Mention(Term::kQuarantine) +
                                   " to keep them aside; " + Mention(Term::kQuarantine) + " again",
                               {Term::kQuarantine});
  EXPECT_EQ(st.message(),
            "fix these rows, or pass `quarantine` to keep them aside; `quarantine` again");
  EXPECT_EQ(RewordMessage(st, Cli),
            "fix these rows, or pass --quarantine to keep them aside; --quarantine again");
  EXPECT_TRUE(HasErrorKind(st, ErrorKind::kDataRejected));
  // A prefix added on the way up keeps the detail, so the rewording still applies.
  arrow::Status wrapped = st.WithMessage("ingest clicks: ", st.message());
  EXPECT_EQ(RewordMessage(wrapped, Cli),
            "ingest clicks: fix these rows, or pass --quarantine to keep them aside; --quarantine "
            "again");
}

TEST(Status, OnlyTheNamedTermsAreReworded) {
  // `repo` is written but not named: it stays as it is.
  arrow::Status st =
      UserError(ErrorKind::kObjectNotFound, "pass " + Mention(Term::kQuarantine) + " or `repo`",
                {Term::kQuarantine});
  EXPECT_EQ(RewordMessage(st, Cli), "pass --quarantine or `repo`");
  arrow::Status more = WithTerms(st, {Term::kRepo});
  EXPECT_EQ(RewordMessage(more, Cli), "pass --quarantine or --repo DIR");
  EXPECT_EQ(RewordMessage(arrow::Status::Invalid("plain `quarantine`"), Cli), "plain `quarantine`");
}

TEST(Status, ClosestNames) {
  EXPECT_EQ(ClosestNames("order", {"customers", "orders", "clicks"}),
            std::vector<std::string>{"orders"});
  EXPECT_TRUE(ClosestNames("zzzzzz", {"customers", "orders"}).empty());
}

}  // namespace
}  // namespace stratalake
