#pragma once
// Operator helpers for black-box tests: an admin made the way an operator makes
// one (custodianctl with the node's bootstrap secret), and a reader of the
// Prometheus text format that GET /metrics serves.

#include "tests/support/api_client.hpp"
#include "tests/support/node_process.hpp"

#include <boost/test/unit_test.hpp>

#include <map>
#include <sstream>
#include <stdexcept>
#include <string>

namespace custodian::test {

inline std::string run_ctl(const std::string& args) {
  return run_command(std::string(CUSTODIAN_CTL_BIN) + " " + args).out;
}

/// An admin on the node at `url` whose data dir is `data` (root@example.com).
inline user_session make_admin(const std::string& url, const std::string& data, api_client& api) {
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
/// sums what matches; a series that is not there is an error, never 0 (a
/// missing family must not pass a `== 0` check). value_or() is for a series
/// that may rightly not exist yet (a label set first seen later).
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

  double value(const std::string& name,
               const std::map<std::string, std::string>& labels = {}) const {
    if (!has(name, labels)) {
      std::string what = name + "{";
      for (auto& [k, v] : labels)
        what += k + "=\"" + v + "\",";
      throw std::runtime_error("no series " + what + "} in the scrape");
    }
    return value_or(0, name, labels);
  }
  bool has(const std::string& name, const std::map<std::string, std::string>& labels = {}) const {
    for (auto& [key, v] : series)
      if (matches(key, name, labels))
        return true;
    return false;
  }
  double value_or(double none, const std::string& name,
                  const std::map<std::string, std::string>& labels = {}) const {
    if (!has(name, labels))
      return none;
    double sum = 0;
    for (auto& [key, v] : series)
      if (matches(key, name, labels))
        sum += v;
    return sum;
  }

private:
  static bool matches(const std::string& key, const std::string& name,
                      const std::map<std::string, std::string>& labels) {
    auto brace = key.find('{');
    if (key.substr(0, brace) != name)
      return false;
    for (auto& [k, want] : labels)
      if (key.find(k + "=\"" + want + "\"") == std::string::npos)
        return false;
    return true;
  }
};

}  // namespace custodian::test
