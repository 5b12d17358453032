#pragma once
// Operator helpers for black-box tests: an admin made the way an operator makes
// one (custodianctl with the node's bootstrap secret), and a reader of the
// Prometheus text format that GET /metrics serves.

#include "tests/support/api_client.hpp"
#include "tests/support/node_process.hpp"

#include <boost/test/unit_test.hpp>

#include <map>
#include <sstream>
#include <string>

namespace custodian::test {

inline std::string run_ctl(const std::string& args) {
  return run_command(std::string(CUSTODIAN_CTL_BIN) + " " + args).out;
}

/// An admin on the node at `url` whose data dir is `data` (root@example.com).
inline user_session make_admin(const std::string& url, const std::string& data,
                               api_client& api) {
  auto out = run_ctl("--url " + url + " admin create --email root@example.com --password "
                     "'root password' --name Root --secret-file " + data + "/admin.secret");
  BOOST_TEST_REQUIRE(out.find("user_id") != std::string::npos, out);
  auto l = api.login("root@example.com", "root password");
  BOOST_TEST_REQUIRE(l.status == 200, l.body);
  auto s = api_client::parse<v1::LoginResponse>(l);
  return {s.user_id(), s.token(), "root@example.com", "Root"};
}

/// One scrape: `name{labels}` as printed (labels in the server's order) ->
/// value. value() looks a series up by name and a subset of its labels and
/// sums what matches (0 when nothing does: a counter not moved yet).
struct scrape {
  std::map<std::string, double> series;

  explicit scrape(const std::string& text) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#')
        continue;
      auto sp = line.rfind(' ');
      series[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
    }
  }

  double value(const std::string& name, const std::map<std::string, std::string>& labels = {}) const {
    double sum = 0;
    for (auto& [key, v] : series) {
      auto brace = key.find('{');
      if (key.substr(0, brace) != name)
        continue;
      bool all = true;
      for (auto& [k, want] : labels)
        all = all && key.find(k + "=\"" + want + "\"") != std::string::npos;
      if (all)
        sum += v;
    }
    return sum;
  }
};

} // namespace custodian::test
