// Crypto-shredding end to end: after an erase no file the node wrote holds the
// user's personal data (plaintext or base64), and a copy of the store taken
// before the erase can no longer be decrypted with the node's keys.
#define BOOST_TEST_MODULE shredding_e2e
#include <boost/test/unit_test.hpp>

#include "actors/user/user_logic.hpp"
#include "runtime/crypto/keyring.hpp"
#include "runtime/service/helpers.hpp"
#include "runtime/store/rocks/key_slots.hpp"
#include "runtime/store/rocks_store.hpp"
#include "runtime/store/sqlite_store.hpp"
#include "tests/support/e2e_fixture.hpp"

#include <sodium.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <fstream>

using namespace custodian;
using namespace custodian::test;

namespace {

/// The needle as it appears inside base64 text at each of the 3 alignments
/// (standard and URL-safe alphabets), edge characters trimmed.
std::vector<std::string> base64_forms(const std::string& needle) {
  std::vector<std::string> out;
  for (int variant : {sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_URLSAFE_NO_PADDING})
    for (size_t pad = 0; pad < 3; ++pad) {
      std::string in = std::string(pad, 'x') + needle;
      std::string b64(sodium_base64_ENCODED_LEN(in.size(), variant), '\0');
      sodium_bin2base64(b64.data(), b64.size(), reinterpret_cast<const unsigned char*>(in.data()),
                        in.size(), variant);
      b64.resize(std::strlen(b64.c_str()));
      size_t skip = (pad * 8 + 5) / 6 + 1;  // characters touched by the prefix
      if (b64.size() > skip + 4)
        out.push_back(b64.substr(skip, b64.size() - skip - 4));
    }
  return out;
}

/// The store of `svc` in a copy of a data directory.
std::shared_ptr<store::event_store> open_copy(const std::string& dir, const std::string& svc,
                                              const std::string& keys_db) {
  if (rocks_store_under_test())
    return std::make_shared<store::rocks_store>(
      store::rocks_options{dir + "/store", svc, "normal"});
  return std::make_shared<store::sqlite_store>(
    store::sqlite_options{dir + "/" + svc + ".db", "normal", keys_db});
}

/// A backup of the data files without the key tables: the SQLite files of
/// each service, or the RocksDB directory without its key file.
void backup_data(const std::string& data, const std::string& backup) {
  std::filesystem::create_directories(backup);
  if (rocks_store_under_test()) {
    std::filesystem::create_directories(backup + "/store");
    for (auto& e : std::filesystem::directory_iterator(data + "/store"))
      if (e.path().filename().string().rfind("keys.", 0) != 0 && e.path().filename() != "LOCK")
        std::filesystem::copy_file(e.path(), backup + "/store/" + e.path().filename().string());
    return;
  }
  for (auto& svc : all_services())
    std::filesystem::copy_file(data + "/" + svc + ".db", backup + "/" + svc + ".db");
}

/// The node's current key table beside a backup's data (RocksDB keeps it in
/// the store directory), as an attacker holding both would use them.
std::string keys_beside(const std::string& data, const std::string& backup) {
  if (!rocks_store_under_test())
    return data + "/user.keys.db";
  for (auto f : {"keys.slots"}) {
    std::filesystem::remove(backup + "/store/" + std::string(f));
    if (std::filesystem::exists(data + "/store/" + std::string(f)))
      std::filesystem::copy_file(data + "/store/" + std::string(f),
                                 backup + "/store/" + std::string(f));
  }
  return "";
}

/// Reads the display names of `uid` from a copied store with a given key table.
std::vector<std::optional<std::string>> read_names(const std::string& dir,
                                                   const std::string& keys_db,
                                                   const crypto::key32& master,
                                                   const std::string& uid) {
  auto st = open_copy(dir, "user", keys_db);
  crypto::keyring keys{master, "user", st};
  std::vector<std::optional<std::string>> out;
  store_view view{*st};
  for (auto& ev : read_events(view, uid))
    if (auto created = event_as<user::ProfileCreated>(ev))
      out.push_back(keys.open(uid, created->display_name_sealed(), "display_name"));
  st->close();
  return out;
}

/// A copy of a directory the node is writing (a backup taken while it runs):
/// files that vanish mid-copy (a compaction) are skipped.
std::string copy_running(const std::string& from, const std::string& to) {
  std::filesystem::create_directories(to);
  for (auto& e : std::filesystem::recursive_directory_iterator(from)) {
    auto rel = std::filesystem::relative(e.path(), from);
    std::error_code ec;
    if (e.is_directory(ec))
      std::filesystem::create_directories(std::filesystem::path(to) / rel, ec);
    else if (e.is_regular_file(ec))
      std::filesystem::copy_file(e.path(), std::filesystem::path(to) / rel, ec);
  }
  return to;
}

/// The sealed key rows of `uid` in the key files of a copied data directory,
/// read the way the store reads them (SQLite replays the copied WAL; the
/// RocksDB store's slot file zeroes torn slots and indexes the rest).
std::vector<std::string> sealed_keys(const std::string& dir, const std::string& uid) {
  std::vector<std::string> out;
  if (rocks_store_under_test()) {
    store::rocks::key_slots slots{dir + "/store/keys.slots", false};
    for (auto& svc : all_services())
      if (auto k = slots.get(svc, uid))
        out.push_back(*k);
    return out;
  }
  for (auto& svc : all_services()) {
    auto f = dir + "/" + svc + ".keys.db";
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(f.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK) {
      sqlite3_stmt* st = nullptr;
      if (sqlite3_prepare_v2(db, "SELECT sealed FROM keys WHERE user_id = ?1", -1, &st, nullptr)
          == SQLITE_OK) {
        sqlite3_bind_text(st, 1, uid.c_str(), -1, SQLITE_TRANSIENT);
        while (sqlite3_step(st) == SQLITE_ROW)
          out.emplace_back(static_cast<const char*>(sqlite3_column_blob(st, 0)),
                           static_cast<size_t>(sqlite3_column_bytes(st, 0)));
      }
      sqlite3_finalize(st);
    }
    sqlite3_close(db);
  }
  return out;
}

/// The files under `dir` that hold any of `needles` (raw bytes).
std::vector<std::string> files_holding(const std::string& dir,
                                       const std::vector<std::string>& needles) {
  std::vector<std::string> out;
  for (auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    std::error_code ec;
    if (!e.is_regular_file(ec))
      continue;
    auto bytes = slurp(e.path().string());
    for (auto& n : needles)
      if (!n.empty() && bytes.find(n) != std::string::npos) {
        out.push_back(e.path().string());
        break;
      }
  }
  return out;
}

/// The sealed display names of `uid` as stored (ciphertext bytes), from a copy.
std::vector<std::string> sealed_names(const std::string& dir, const std::string& uid) {
  auto st = open_copy(dir, "user", rocks_store_under_test() ? "" : dir + "/user.keys.db");
  std::vector<std::string> out;
  store_view view{*st};
  for (auto& ev : read_events(view, uid))
    if (auto created = event_as<user::ProfileCreated>(ev))
      out.push_back(created->display_name_sealed());
  st->close();
  return out;
}

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (auto& s : v)
    out += s + " ";
  return out;
}

}  // namespace

/// A node whose erased records must leave its files within 1 s (store.scrub-after).
struct scrub_fixture : e2e_fixture {
  scrub_fixture() : e2e_fixture(std::vector<std::string>{"--store.scrub-after=1s"}) {}
};

BOOST_FIXTURE_TEST_CASE(a_copy_taken_right_after_done_holds_no_key_and_a_kill_keeps_none,
                        scrub_fixture) {
  auto u = make_user("copy", "Grace Hopper");
  watchhistory::WatchRequest w;
  w.set_title_id("the-third-man");
  BOOST_TEST_REQUIRE(
    api->send("POST", "/v1/users/" + u.user_id + "/watch-history", w, u.token).status == 201);
  // What an attacker copying the running node's files would look for: the
  // user's sealed key rows, and the ciphertext of their records.
  auto before = copy_running(data, dir.file("before"));
  auto keys = sealed_keys(before, u.user_id);
  BOOST_TEST_REQUIRE(keys.size() >= 2u);  // user and watchhistory seal with their own keys
  auto records = sealed_names(before, u.user_id);
  BOOST_TEST_REQUIRE(records.size() == 1u);

  auto d = api->raw("DELETE", "/v1/users/" + u.user_id, "", u.token);
  BOOST_TEST_REQUIRE(d.status == 202);
  BOOST_TEST_REQUIRE(api->wait_job(api_client::parse<v1::JobAccepted>(d).job_id()).state()
                     == "done");
  // Right after done, the node still running: a copy of every file holds no
  // byte of any of the keys, and SQLite replaying the copied WAL finds no row.
  auto after = copy_running(data, dir.file("after"));
  BOOST_TEST(files_holding(after, keys).empty(), joined(files_holding(after, keys)));
  BOOST_TEST(sealed_keys(after, u.user_id).empty());

  // kill -9 right after: the files as the crash left them hold no key either.
  node.kill9();
  BOOST_TEST(files_holding(data, keys).empty(), joined(files_holding(data, keys)));
  auto crashed = copy_running(data, dir.file("crashed"));
  BOOST_TEST(sealed_keys(crashed, u.user_id).empty());

  // The records' ciphertext leaves every file within store.scrub-after of the
  // next start (the run that erased them ended without its scrub).
  restart();
  bool gone =
    wait_until([&] { return files_holding(data, records).empty(); }, std::chrono::seconds(20));
  BOOST_TEST(gone, joined(files_holding(data, records)));
}

BOOST_FIXTURE_TEST_CASE(erase_shreds_every_copy, e2e_fixture) {
  auto u = make_user("shred", "Ada Lovelace");
  for (auto title : {"the-secret-garden", "brief-encounter"}) {
    watchhistory::WatchRequest w;
    w.set_title_id(title);
    BOOST_TEST_REQUIRE(
      api->send("POST", "/v1/users/" + u.user_id + "/watch-history", w, u.token).status == 201);
  }
  // A backup of the data files (not the key tables), taken while the user exists.
  BOOST_TEST_REQUIRE(node.stop() == 0);
  auto backup = dir.file("backup");
  backup_data(data, backup);
  crypto::key32 master;
  BOOST_TEST_REQUIRE(crypto::load_or_create_master_key(data + "/master.key", master).empty());
  auto reading = dir.file("reading");  // a copy to read (opening a store writes to it)
  std::filesystem::copy(backup, reading, std::filesystem::copy_options::recursive);
  auto before = read_names(reading, keys_beside(data, reading), master, u.user_id);
  BOOST_TEST_REQUIRE(before.size() == 1u);
  BOOST_TEST(before[0].value_or("") == "Ada Lovelace");  // readable with the keys, before

  restart();
  auto d = api->raw("DELETE", "/v1/users/" + u.user_id, "", u.token);
  BOOST_TEST_REQUIRE(d.status == 202);
  BOOST_TEST(api->wait_job(api_client::parse<v1::JobAccepted>(d).job_id()).state() == "done");
  BOOST_TEST_REQUIRE(node.stop() == 0);

  // The pre-erase copy, read with the node's keys, is ciphertext only.
  std::filesystem::remove_all(reading);
  std::filesystem::copy(backup, reading, std::filesystem::copy_options::recursive);
  auto after = read_names(reading, keys_beside(data, reading), master, u.user_id);
  BOOST_TEST_REQUIRE(after.size() == 1u);
  BOOST_TEST(!after[0].has_value());

  // No file the node wrote (stores, WAL, key tables, log) holds the personal data.
  std::vector<std::string> needles{u.email, "Ada Lovelace", "the-secret-garden", "brief-encounter"};
  std::vector<std::string> files{node.log_file};
  for (auto& e : std::filesystem::recursive_directory_iterator(data))
    if (e.is_regular_file())
      files.push_back(e.path().string());
  for (auto& f : files) {
    auto bytes = slurp(f);
    for (auto& n : needles) {
      BOOST_TEST(bytes.find(n) == std::string::npos, f << " holds " << n);
      for (auto& b : base64_forms(n))
        BOOST_TEST(bytes.find(b) == std::string::npos, f << " holds base64 of " << n);
    }
  }
  // The backup itself holds no plaintext either (everything personal was sealed).
  for (auto& e : std::filesystem::recursive_directory_iterator(backup))
    for (auto& n : needles)
      if (e.is_regular_file())
        BOOST_TEST(slurp(e.path().string()).find(n) == std::string::npos, e.path()
                                                                            << " holds " << n);
}

BOOST_FIXTURE_TEST_CASE(master_key_rotation_keeps_data_and_sessions, e2e_fixture) {
  auto u = make_user("rotate", "Rotating Ruth");
  BOOST_TEST_REQUIRE(node.stop() == 0);
  auto new_key = dir.file("new-master.key");
  std::string backend;
  for (auto& a : store_args(node.db_prefix))
    backend += " " + a;
  auto r = run_command(std::string(CUSTODIAN_NODE_BIN) + " --store.data-dir=" + data + backend
                       + " --crypto.rotate-to=" + new_key);
  BOOST_TEST_REQUIRE(r.code == 0, r.out);
  BOOST_TEST(r.out.find("re-sealed") != std::string::npos, r.out);
  // With the old key the node no longer starts: its key tables moved on.
  node.spawn();
  BOOST_TEST(wait_until([&] { return node.exited(); }));
  BOOST_TEST(slurp(node.log_file).find("master key") != std::string::npos);
  // With the new key: data readable, email index and the session still valid.
  node.extra.push_back("--crypto.master-key-file=" + new_key);
  restart();
  auto p = api->raw("GET", "/v1/users/" + u.user_id, "", u.token);
  BOOST_TEST(p.status == 200, p.body);
  BOOST_TEST(api_client::parse<user::Profile>(p).display_name() == "Rotating Ruth");
  BOOST_TEST(api->login(u.email, "correct horse").status == 200);
}

BOOST_AUTO_TEST_CASE(master_key_readable_by_others_stops_start_up) {
  temp_dir dir;
  auto data = dir.file("data");
  std::filesystem::create_directories(data);
  { std::ofstream{data + "/master.key", std::ios::binary} << std::string(32, 'k'); }
  ::chmod((data + "/master.key").c_str(), 0644);
  auto r = run_command(std::string(CUSTODIAN_NODE_BIN) + " --store.data-dir=" + data
                       + " --gateway.listen=127.0.0.1:" + std::to_string(free_port()));
  BOOST_TEST(r.code == 1);
  BOOST_TEST(r.out.find("chmod 600") != std::string::npos, r.out);
}
