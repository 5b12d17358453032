// The node's key file (runtime/store/rocks/key_slots.hpp): a destroyed key's
// bytes leave the file when destroy returns, a slot torn by a crash is zeroed
// at the next open, an interrupted rotation keeps the newer key, a user's
// keys share a page, and bad input or a second opener get a clear error.
#define BOOST_TEST_MODULE key_slots
#include <boost/test/unit_test.hpp>

#include "runtime/store/event_store.hpp"
#include "runtime/store/rocks/key_slots.hpp"
#include "tests/support/fd_fault.hpp"
#include "tests/support/temp_dir.hpp"

#include <fstream>
#include <set>

using custodian::errc;
using custodian::store::store_error;
using custodian::store::rocks::key_slots;
namespace test = custodian::test;

namespace {

std::string sealed_of(const std::string& svc, const std::string& user) {
  return "SEALED[" + svc + "/" + user + "]-0123456789abcdef0123456789abcdef0123456789abcdef";
}

/// Overwrites `n` bytes of the file at `off`.
void poke(const std::string& file, size_t off, const std::string& bytes) {
  std::fstream f{file, std::ios::in | std::ios::out | std::ios::binary};
  f.seekp(static_cast<std::streamoff>(off));
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_destroyed_key_leaves_the_file_and_the_others_stay_after_a_reopen) {
  test::temp_dir dir;
  auto file = dir.file("keys.slots");
  {
    key_slots k{file, true};
    for (auto u : {"u1", "u2", "u3"})
      for (auto s : {"auth", "user"})
        BOOST_TEST(k.put(s, u, sealed_of(s, u)) == sealed_of(s, u));
    BOOST_TEST(k.put("auth", "u1", "another") == sealed_of("auth", "u1"));  // the first stays
    BOOST_TEST(k.live() == 6u);
    auto bytes = test::slurp(file);
    BOOST_TEST_REQUIRE(bytes.find(sealed_of("user", "u2")) != std::string::npos);
    k.destroy({{"auth", "u2"}, {"user", "u2"}, {"user", "nobody"}});
    bytes = test::slurp(file);
    BOOST_TEST(bytes.find(sealed_of("user", "u2")) == std::string::npos);
    BOOST_TEST(bytes.find(sealed_of("auth", "u2")) == std::string::npos);
    BOOST_TEST(bytes.find("u2") == std::string::npos);  // the whole slot, not only the key
    BOOST_TEST(!k.get("user", "u2"));
    BOOST_TEST(k.settled());
  }
  key_slots k{file, true};
  BOOST_TEST(k.live() == 4u);
  BOOST_TEST(k.get("auth", "u3").value_or("") == sealed_of("auth", "u3"));
  BOOST_TEST(!k.get("auth", "u2"));
  auto all = k.all("user");
  BOOST_TEST(all.size() == 2u);
}

BOOST_AUTO_TEST_CASE(a_users_keys_share_a_page_when_registrations_interleave) {
  test::temp_dir dir;
  auto file = dir.file("keys.slots");
  key_slots k{file, true};
  std::vector<std::string> svcs{"auth", "authz", "billing", "user", "watchhistory"};
  for (auto& s : svcs)  // the services are known (a node's first registrations)
    k.put(s, "first", sealed_of(s, "first"));
  for (auto& s : svcs)
    for (int u = 0; u < 20; ++u)
      k.put(s, "u" + std::to_string(u), sealed_of(s, "u" + std::to_string(u)));
  auto bytes = test::slurp(file);
  for (int u = 0; u < 20; ++u) {
    std::set<size_t> pages;
    for (auto& s : svcs) {
      auto at = bytes.find(sealed_of(s, "u" + std::to_string(u)));
      BOOST_TEST_REQUIRE(at != std::string::npos);
      pages.insert(at / key_slots::page_size);
    }
    BOOST_TEST(pages.size() == 1u, "u" << u << " on " << pages.size() << " pages");
  }
}

BOOST_AUTO_TEST_CASE(a_slot_torn_by_a_crash_is_zeroed_at_the_next_open) {
  test::temp_dir dir;
  auto file = dir.file("keys.slots");
  {
    key_slots k{file, true};
    k.put("user", "u1", sealed_of("user", "u1"));
    k.put("user", "u2", sealed_of("user", "u2"));
  }
  auto bytes = test::slurp(file);
  auto at = bytes.find(sealed_of("user", "u1"));
  BOOST_TEST_REQUIRE(at != std::string::npos);
  poke(file, at + 40, "torn");  // half of a write: the checksum no longer matches
  BOOST_TEST_REQUIRE(test::slurp(file).find("SEALED[user/u1]") != std::string::npos);
  key_slots k{file, true};
  BOOST_TEST(!k.get("user", "u1"));
  BOOST_TEST(test::slurp(file).find("SEALED[user/u1]") == std::string::npos);
  BOOST_TEST(k.get("user", "u2").value_or("") == sealed_of("user", "u2"));
  BOOST_TEST(k.live() == 1u);
}

BOOST_AUTO_TEST_CASE(a_rotation_interrupted_between_its_syncs_keeps_the_newer_key) {
  test::temp_dir dir;
  auto file = dir.file("keys.slots");
  std::string old_slot;
  size_t old_at = 0;
  {
    key_slots k{file, true};
    k.put("user", "u1", sealed_of("user", "u1"));
    auto bytes = test::slurp(file);
    old_at = bytes.find(sealed_of("user", "u1")) / key_slots::slot_size * key_slots::slot_size;
    old_slot = bytes.substr(old_at, key_slots::slot_size);
    k.replace("user", {{"u1", "ROTATED-KEY-OF-u1"}});
    BOOST_TEST(k.get("user", "u1").value_or("") == "ROTATED-KEY-OF-u1");
    BOOST_TEST(test::slurp(file).find(sealed_of("user", "u1")) == std::string::npos);
  }
  // As a crash after the new slot's sync and before the old one was zeroed.
  poke(file, old_at, old_slot);
  BOOST_TEST_REQUIRE(test::slurp(file).find(sealed_of("user", "u1")) != std::string::npos);
  key_slots k{file, true};
  BOOST_TEST(k.get("user", "u1").value_or("") == "ROTATED-KEY-OF-u1");
  BOOST_TEST(test::slurp(file).find(sealed_of("user", "u1")) == std::string::npos);
  BOOST_TEST(k.live() == 1u);
  // The kept slot is known as taken: listed, and not handed to a new key.
  BOOST_TEST(k.all("user").size() == 1u);
  for (int i = 0; i < 40; ++i)
    k.put("user", "x" + std::to_string(i), sealed_of("user", "x" + std::to_string(i)));
  BOOST_TEST(k.get("user", "u1").value_or("") == "ROTATED-KEY-OF-u1");
}

BOOST_AUTO_TEST_CASE(a_failed_fsync_keeps_the_slots_until_a_destruction_succeeds) {
  test::temp_dir dir;
  auto file = dir.file("keys.slots");
  key_slots k{file, true};
  k.put("user", "u1", sealed_of("user", "u1"));
  {
    // Writes go nowhere and fdatasync fails (EINVAL): the zeros never reach the file.
    test::fd_fault fault{test::fd_of(file), file, "/dev/null", O_WRONLY};
    BOOST_CHECK_EXCEPTION(k.destroy({{"user", "u1"}}), store_error, [](const store_error& e) {
      return e.code == errc::io && std::string(e.what()).find("key file") != std::string::npos;
    });
  }
  BOOST_TEST(!k.settled());
  BOOST_TEST(!k.get("user", "u1"));
  BOOST_TEST(test::slurp(file).find(sealed_of("user", "u1")) != std::string::npos);
  k.put("user", "u2", sealed_of("user", "u2"));  // the pending slot is not handed out again
  BOOST_TEST(test::slurp(file).find(sealed_of("user", "u1")) != std::string::npos);
  k.destroy({});  // any later destruction writes the pending zeros
  BOOST_TEST(k.settled());
  BOOST_TEST(test::slurp(file).find(sealed_of("user", "u1")) == std::string::npos);
  BOOST_TEST(k.get("user", "u2").value_or("") == sealed_of("user", "u2"));
}

BOOST_AUTO_TEST_CASE(bad_input_and_a_second_opener_get_a_clear_error) {
  test::temp_dir dir;
  auto file = dir.file("keys.slots");
  key_slots k{file, true};
  BOOST_CHECK_EXCEPTION(k.put("user", std::string(300, 'x'), "sealed"), store_error,
                        [](const store_error& e) { return e.code == errc::invalid; });
  BOOST_CHECK_EXCEPTION((key_slots{file, true}), store_error, [](const store_error& e) {
    return e.code == errc::unavailable
           && std::string(e.what()).find("in use by another process") != std::string::npos;
  });
  std::ofstream{dir.file("other")} << "not a key file at all";
  {
    std::ofstream zeros{dir.file("zeros")};  // a first start cut short before its header
    zeros << std::string(key_slots::page_size, '\0');
  }
  key_slots fresh{dir.file("zeros"), true};
  BOOST_TEST(fresh.put("user", "u1", "KEY") == "KEY");
  BOOST_CHECK_EXCEPTION(
    (key_slots{dir.file("other"), true}), store_error, [](const store_error& e) {
      return e.code == errc::io
             && std::string(e.what()).find("not a key slot file") != std::string::npos;
    });
}
