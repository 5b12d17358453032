#pragma once
// cluster_nodes plus the Boost.Test helpers of the cluster tests.

#include "tests/support/cluster_nodes.hpp"
#include "tests/support/e2e_fixture.hpp"

namespace custodian::test {

struct cluster_fixture : cluster_nodes {
  using cluster_nodes::cluster_nodes;

  user_session make_user(const std::string& tag, int watches = 2) {
    user_session u;
    u.email = tag + "-" + std::to_string(++counter) + "@example.com";
    u.name = "User " + std::to_string(counter);
    auto r = api->register_user(u.email, "correct horse", u.name);
    BOOST_REQUIRE_MESSAGE(r.status == 201, "register: " << r.status << " " << r.body);
    auto l = api_client::parse<v1::LoginResponse>(api->login(u.email, "correct horse"));
    u.user_id = l.user_id();
    u.token = l.token();
    for (int i = 0; i < watches; ++i) {
      watchhistory::WatchRequest w;
      w.set_title_id("title-" + std::to_string(i));
      w.set_progress_s(i);
      auto wr = api->send("POST", "/v1/users/" + u.user_id + "/watch-history", w, u.token);
      BOOST_REQUIRE_MESSAGE(wr.status == 201, "watch: " << wr.status << " " << wr.body);
    }
    return u;
  }

  std::string erase(const user_session& u) {
    auto d = api->raw("DELETE", "/v1/users/" + u.user_id, "", u.token);
    BOOST_REQUIRE_MESSAGE(d.status == 202, "erase: " << d.status << " " << d.body);
    return api_client::parse<v1::JobAccepted>(d).job_id();
  }
};

}  // namespace custodian::test
