#include "agent/policy/glob.h"

#include "gtest/gtest.h"

namespace seccomp_agent {
namespace {

PathGlob P(const char* pattern) {
  auto g = PathGlob::Compile(pattern);
  EXPECT_TRUE(g.ok()) << pattern << ": " << g.status();
  return g.ok() ? *g : PathGlob();
}

FlatGlob F(const char* pattern) {
  auto g = FlatGlob::Compile(pattern);
  EXPECT_TRUE(g.ok()) << pattern << ": " << g.status();
  return g.ok() ? *g : FlatGlob();
}

TEST(PathGlobTest, DoubleStarMatchesTheDirectoryItselfAndEverythingBelow) {
  PathGlob g = P("/forbidden/**");
  EXPECT_TRUE(g.Matches("/forbidden"));
  EXPECT_TRUE(g.Matches("/forbidden/"));
  EXPECT_TRUE(g.Matches("/forbidden/a"));
  EXPECT_TRUE(g.Matches("/forbidden/a/b/c"));
  EXPECT_FALSE(g.Matches("/forbiddenx"));
  EXPECT_FALSE(g.Matches("/forbidden2/a"));
  EXPECT_FALSE(g.Matches("/other/forbidden/a"));
  EXPECT_FALSE(g.Matches("/"));
}

TEST(PathGlobTest, SingleStarStaysWithinOneComponent) {
  PathGlob g = P("/fake*");
  EXPECT_TRUE(g.Matches("/fake"));
  EXPECT_TRUE(g.Matches("/fakedir"));
  EXPECT_FALSE(g.Matches("/fake/sub"));
  EXPECT_FALSE(g.Matches("/x/fake"));
  PathGlob mid = P("/a/*/c");
  EXPECT_TRUE(mid.Matches("/a/b/c"));
  EXPECT_FALSE(mid.Matches("/a/b/b2/c"));
  EXPECT_FALSE(mid.Matches("/a/c"));
}

TEST(PathGlobTest, DoubleStarInTheMiddleMatchesZeroOrMoreComponents) {
  PathGlob g = P("/a/**/z");
  EXPECT_TRUE(g.Matches("/a/z"));
  EXPECT_TRUE(g.Matches("/a/b/z"));
  EXPECT_TRUE(g.Matches("/a/b/c/d/z"));
  EXPECT_FALSE(g.Matches("/a/b/c/d/z2"));
  EXPECT_FALSE(g.Matches("/b/z"));
  PathGlob two = P("/**/x/**/y");
  EXPECT_TRUE(two.Matches("/x/y"));
  EXPECT_TRUE(two.Matches("/1/2/x/3/4/y"));
  EXPECT_FALSE(two.Matches("/1/2/x/3/4/y/5"));
  EXPECT_TRUE(P("/**").Matches("/any/thing"));
}

TEST(PathGlobTest, QuestionMarkAndBrackets) {
  EXPECT_TRUE(P("/dev/tty?").Matches("/dev/tty1"));
  EXPECT_FALSE(P("/dev/tty?").Matches("/dev/tty"));
  EXPECT_FALSE(P("/dev/tty?").Matches("/dev/tty12"));
  PathGlob b = P("/dev/sd[a-c]");
  EXPECT_TRUE(b.Matches("/dev/sda"));
  EXPECT_TRUE(b.Matches("/dev/sdc"));
  EXPECT_FALSE(b.Matches("/dev/sdd"));
  PathGlob n = P("/dev/sd[!a-c]");
  EXPECT_FALSE(n.Matches("/dev/sda"));
  EXPECT_TRUE(n.Matches("/dev/sdz"));
  EXPECT_TRUE(P("/x/[]]").Matches("/x/]"));
  EXPECT_TRUE(P("/lit\\*").Matches("/lit*"));
  EXPECT_FALSE(P("/lit\\*").Matches("/litx"));
}

TEST(PathGlobTest, TextIsNormalizedLexicallyButDotDotIsNotResolved) {
  PathGlob g = P("/etc/*");
  EXPECT_TRUE(g.Matches("/etc//passwd"));
  EXPECT_TRUE(g.Matches("/etc/./passwd"));
  EXPECT_TRUE(g.Matches("//etc/passwd"));
  EXPECT_FALSE(g.Matches("/etc/../etc/x/y"));
  EXPECT_TRUE(g.Matches("/etc/.hidden"));
}

TEST(PathGlobTest, RelativeTextIsMatchedLiterallyAndNeverMatchesAbsoluteGlobs) {
  EXPECT_FALSE(P("/forbidden/**").Matches("forbidden/a"));
  EXPECT_FALSE(P("/fake*").Matches("fake"));
  EXPECT_FALSE(P("/**").Matches("relative"));
  EXPECT_FALSE(P("/**").Matches(""));
}

TEST(PathGlobTest, CompileErrors) {
  EXPECT_FALSE(PathGlob::Compile("/a**").ok());
  EXPECT_FALSE(PathGlob::Compile("/a/**b/c").ok());
  EXPECT_FALSE(PathGlob::Compile("/a/[bc").ok());
  EXPECT_FALSE(PathGlob::Compile("/a/[/]").ok());
  EXPECT_FALSE(PathGlob::Compile("/a\\").ok());
}

TEST(PathGlobTest, ManyStarsStayFast) {
  // Greedy matching is O(pattern * text); this would take ages with naive
  // backtracking.
  PathGlob g = P("/**/**/**/**/**/**/**/**/nomatch");
  std::string deep;
  for (int i = 0; i < 500; ++i) deep += "/d";
  EXPECT_FALSE(g.Matches(deep));
  auto f = FlatGlob::Compile("*a*a*a*a*a*a*a*a*a*b");
  ASSERT_TRUE(f.ok());
  EXPECT_FALSE(f->Matches(std::string(3000, 'a')));
}

TEST(FlatGlobTest, StarCrossesSlashes) {
  FlatGlob g = F("runc-*");
  EXPECT_TRUE(g.Matches("runc-abc/def"));
  EXPECT_FALSE(g.Matches("crun-abc"));
  EXPECT_TRUE(F("").Matches(""));
  EXPECT_FALSE(F("").Matches("x"));
  EXPECT_TRUE(F("*").Matches(""));
  EXPECT_TRUE(F("127.0.0.?").Matches("127.0.0.1"));
  EXPECT_TRUE(F("/run/*.sock").Matches("/run/a/b.sock"));
}

TEST(FlatGlobTest, CompileErrors) {
  EXPECT_FALSE(FlatGlob::Compile("a[").ok());
  EXPECT_FALSE(FlatGlob::Compile("a\\").ok());
}

}  // namespace
}  // namespace seccomp_agent
