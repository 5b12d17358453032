#pragma once
// One node process per test, in its own temp dir, plus helpers for users.

#include "tests/support/node_process.hpp"
#include "tests/support/services.hpp"

#include <boost/test/unit_test.hpp>

#include <csignal>
#include <functional>

namespace custodian::test {

struct e2e_fixture {
  temp_dir dir;
  std::string data = dir.file("data");
  node_process node{data, dir.file("node.log")};
  std::unique_ptr<api_client> api;

  explicit e2e_fixture(std::vector<std::string> extra = {}) {
    node.extra = std::move(extra);
    node.start();
    api = std::make_unique<api_client>(node.url());
  }

  void restart() {
    node.start();
    api = std::make_unique<api_client>(node.url());
  }

  /// Freezes the node (SIGSTOP) and asks `pending` of its stores. From the
  /// freeze on nothing in them changes, so a kill -9 now lands exactly where
  /// `pending` saw the work: true = frozen mid-job (kill it next); false =
  /// the work had finished first, and the node is woken again.
  bool frozen_mid_job(const std::function<bool()>& pending) {
    ::kill(node.pid, SIGSTOP);
    if (pending())
      return true;
    ::kill(node.pid, SIGCONT);
    return false;
  }

  user_session make_user(const std::string& tag, const std::string& name = "Ada Lovelace") {
    user_session u;
    u.email = tag + "-" + std::to_string(++counter) + "@example.com";
    u.name = name;
    auto r = api->register_user(u.email, "correct horse", name);
    BOOST_REQUIRE_MESSAGE(r.status == 201, "register: " << r.status << " " << r.body);
    auto l = api->login(u.email, "correct horse");
    BOOST_REQUIRE_MESSAGE(l.status == 200, "login: " << l.status << " " << l.body);
    auto s = api_client::parse<v1::LoginResponse>(l);
    u.user_id = s.user_id();
    u.token = s.token();
    return u;
  }

  std::string db(const std::string& service) const { return data + "/" + service + ".db"; }

  /// Records of one service's table (collection), all or where field == value.
  int64_t rows(const std::string& svc, const std::string& table, const std::string& field = "",
               const std::string& value = "") const {
    return store_rows(db(svc), node.db_prefix + svc, table, field, value);
  }
  /// Inbox records whose request id contains `needle`.
  int64_t inbox_rows_containing(const std::string& svc, const std::string& needle) const {
    if (mongo_store_under_test())
      return count_documents(ferretdb_uri(), node.db_prefix + svc, "inbox",
                             "{\"request_id\": {\"$regex\": \"" + needle + "\"}}");
    if (rocks_store_under_test())
      return rocks_count(data + "/store", svc, "u", [&](const std::string& k) {
        return rocks_user_tag('i')(k) && k.find(needle) != std::string::npos;
      });
    return sql_count(db(svc),
                     "SELECT COUNT(*) FROM inbox WHERE request_id LIKE '%" + needle + "%'");
  }

  /// Every byte this node stored, by where it lies: the files of its data
  /// directory, and with the MongoDB backend every document of its databases.
  std::vector<std::pair<std::string, std::string>> stored_bytes() const {
    std::vector<std::pair<std::string, std::string>> out;
    for (auto& entry : std::filesystem::recursive_directory_iterator(data))
      if (entry.is_regular_file())
        out.emplace_back(std::filesystem::relative(entry.path(), data).string(),
                         slurp(entry.path().string()));
    if (mongo_store_under_test())
      for (auto& svc : all_services())
        out.emplace_back(node.db_prefix + svc, dump_database(ferretdb_uri(), node.db_prefix + svc));
    return out;
  }

  /// Row counts of every table of every service: "nothing changed" means equal.
  std::string state_of() const {
    std::string out;
    for (auto& svc : all_services())
      for (auto table : {"events", "idx", "inbox", "jobs", "outbox", "tombstones"})
        out += std::to_string(rows(svc, table)) + ",";
    return out;
  }

  int counter = 0;
};

}  // namespace custodian::test
