// The node's log file (log.file): a warning is in the file as soon as it is
// logged; an info line is written through a buffer and reaches the file
// within about a second without anything else being logged (a flush per info
// line cost a write() per finished job). Bad settings are refused with a sentence.
#define BOOST_TEST_MODULE log
#include <boost/test/unit_test.hpp>

#include "runtime/common/log.hpp"
#include "tests/support/node_process.hpp"
#include "tests/support/temp_dir.hpp"

using namespace custodian;

namespace {

bool in_file(const std::string& file, const std::string& what) {
  return test::slurp(file).find(what) != std::string::npos;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_warning_is_in_the_log_file_as_soon_as_it_is_logged) {
  test::temp_dir dir;
  auto file = dir.file("node.log");
  BOOST_REQUIRE_EQUAL(log::setup("info", "text", file), "");
  log::get("logtest")->warn("disk is slow job={}", 42);
  BOOST_TEST(in_file(file, "[logtest] disk is slow job=42"));
}

BOOST_AUTO_TEST_CASE(an_info_line_reaches_the_log_file_within_a_second_or_two) {
  test::temp_dir dir;
  auto file = dir.file("node.log");
  BOOST_REQUIRE_EQUAL(log::setup("info", "json", file), "");
  log::get("logtest")->info("erase done job={}", "j-1");
  // Nothing else is logged: only the periodic flush can bring it to the file.
  BOOST_TEST(test::wait_until([&] { return in_file(file, R"("msg":"erase done job=j-1")"); },
                              std::chrono::seconds(3)));
}

BOOST_AUTO_TEST_CASE(an_unknown_level_or_format_or_an_unwritable_file_is_refused_with_a_sentence) {
  BOOST_TEST(log::setup("loud", "text", "").find("log.level must be one of") == 0);
  BOOST_TEST(log::setup("info", "xml", "").find("log.format must be") == 0);
  test::temp_dir dir;
  std::ofstream{dir.file("plain")} << "a file, not a directory";
  BOOST_TEST(
    log::setup("info", "text", dir.file("plain") + "/node.log").find("cannot open log file") == 0);
}
