// Node configuration: file + command line, unknown keys and bad values refused.
#define BOOST_TEST_MODULE config
#include <boost/test/unit_test.hpp>

#include "runtime/node/config.hpp"
#include "runtime/service/registry.hpp"
#include "tests/support/certs.hpp"
#include "tests/support/temp_dir.hpp"

#include <fstream>

using namespace custodian;

namespace {

std::vector<std::string> parse(node_config& cfg, std::vector<std::string> args) {
  std::vector<char*> argv{const_cast<char*>("custodian-node")};
  for (auto& a : args)
    argv.push_back(a.data());
  return cfg.parse_args(static_cast<int>(argv.size()), argv.data());
}

bool mentions(const std::vector<std::string>& problems, const std::string& what) {
  for (auto& p : problems)
    if (p.find(what) != std::string::npos)
      return true;
  return false;
}

struct fixture {
  test::temp_dir dir;
  std::string write(const std::string& text) {
    auto f = dir.file("node.ini");
    std::ofstream{f} << text;
    return f;
  }
};

}  // namespace

BOOST_FIXTURE_TEST_CASE(file_values_and_command_line_overrides, fixture) {
  auto f = write(
    "[gateway]\nlisten=\"127.0.0.1:9000\"\n[store]\ndata-dir=\"/var/x\"\n"
    "[node]\nshards=8\n");
  node_config cfg;
  auto problems = parse(cfg, {"--config", f, "--gateway.listen=127.0.0.1:9100"});
  BOOST_TEST(problems.empty());
  BOOST_TEST(cfg.gateway_listen == "127.0.0.1:9100");
  BOOST_TEST(cfg.data_dir == "/var/x");
  BOOST_TEST(cfg.shards == 8u);
}

BOOST_FIXTURE_TEST_CASE(unknown_key_in_file_is_named, fixture) {
  auto f = write("[gateway]\nlisen=\"127.0.0.1:9000\"\n");
  node_config cfg;
  auto problems = parse(cfg, {"--config", f});
  BOOST_TEST(mentions(problems, "unknown key gateway.lisen"));
}

BOOST_FIXTURE_TEST_CASE(unknown_group_in_file_is_named, fixture) {
  auto f = write("[gatewya]\nlisten=\"127.0.0.1:9000\"\n");
  node_config cfg;
  BOOST_TEST(mentions(parse(cfg, {"--config", f}), "gatewya.listen"));
}

BOOST_FIXTURE_TEST_CASE(ill_typed_value_in_file_is_named, fixture) {
  auto f = write("[node]\nshards=\"many\"\n");
  node_config cfg;
  BOOST_TEST(mentions(parse(cfg, {"--config", f}), "invalid value for node.shards"));
}

BOOST_AUTO_TEST_CASE(unknown_command_line_option_is_refused) {
  node_config cfg;
  auto problems = parse(cfg, {"--gateway.lissten=127.0.0.1:1"});
  BOOST_TEST_REQUIRE(!problems.empty());
  BOOST_TEST(mentions(problems, "command line"));
}

BOOST_AUTO_TEST_CASE(missing_config_file_is_named) {
  node_config cfg;
  BOOST_TEST(mentions(parse(cfg, {"--config", "/nonexistent/node.ini"}), "/nonexistent/node.ini"));
}

BOOST_AUTO_TEST_CASE(values_are_validated) {
  node_config cfg;
  auto problems = parse(cfg, {"--gateway.listen=nowhere", "--store.synchronous=sometimes",
                              "--node.services=[\"auth\",\"payroll\"]",
                              "--node.external=[\"crm\",\"ledger=ftp://x\",\"auth=http://x\"]"});
  BOOST_TEST(mentions(problems, "gateway.listen"));
  BOOST_TEST(mentions(problems, "store.synchronous"));
  BOOST_TEST(mentions(problems, "payroll"));
  BOOST_TEST(mentions(problems, "\"crm\" is not NAME=URL"));
  BOOST_TEST(mentions(problems, "ledger must be http(s)://HOST"));
  BOOST_TEST(mentions(problems, "auth is registered twice"));
  node_config c2;
  auto p2 = parse(c2, {"--node.external=[\"crm=http://u:secret@crm.example\"]",
                       "--node.external-timeout=10s", "--outbox.request-timeout=5s"});
  BOOST_TEST(mentions(p2, "without credentials"));
  BOOST_TEST(!mentions(p2, "secret@"));  // the sentence does not repeat the credentials
  BOOST_TEST(mentions(p2, "node.external-timeout"));
}

BOOST_FIXTURE_TEST_CASE(shipped_configs_are_valid, fixture) {
  // The cluster configs point at ./data/certs, made as README says.
  auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir.path);
  test::make_certs("./data/certs", {"node-a", "node-b", "node-c"});
  for (auto f : {"/configs/single-node.ini", "/configs/reference.ini",
                 "/configs/cluster/node-a.ini", "/configs/cluster/node-b.ini",
                 "/configs/cluster/node-c.ini", "/configs/cluster-mongo/node-a.ini",
                 "/configs/cluster-mongo/node-b.ini", "/configs/cluster-mongo/node-c.ini"}) {
    node_config cfg;
    auto problems = parse(cfg, {"--config", std::string(CUSTODIAN_SOURCE_DIR) + f});
    BOOST_TEST(problems.empty(), f << ": " << (problems.empty() ? "" : problems.front()));
  }
  std::filesystem::current_path(cwd);
  node_config cfg;
  parse(cfg, {"--config", std::string(CUSTODIAN_SOURCE_DIR) + "/configs/single-node.ini"});
  BOOST_TEST(cfg.gateway_listen == "127.0.0.1:8080");
  BOOST_TEST(cfg.data_dir == "./data");
  BOOST_TEST(cfg.hosted_services() == builtin_services().names());
}

BOOST_AUTO_TEST_CASE(mongodb_keys_are_checked) {
  node_config cfg;
  BOOST_TEST(
    parse(cfg, {"--store.backend=mongodb", "--store.mongodb.uri=mongodb://h1,h2/?replicaSet=rs0",
                "--store.mongodb.lease=3s"})
      .empty());
  BOOST_TEST(cfg.mongodb_uri == "mongodb://h1,h2/?replicaSet=rs0");
  node_config bad;
  auto problems = parse(bad, {"--store.backend=mongo", "--store.mongodb.uri=http://x"});
  BOOST_TEST(mentions(problems, "store.backend"));
  node_config bad_uri;
  BOOST_TEST(mentions(parse(bad_uri, {"--store.backend=mongodb", "--store.mongodb.uri=http://x"}),
                      "store.mongodb.uri"));
  node_config short_lease;
  BOOST_TEST(
    mentions(parse(short_lease, {"--store.backend=mongodb", "--store.mongodb.lease=100ms"}),
             "store.mongodb.lease"));
  node_config bad_prefix;
  BOOST_TEST(
    mentions(parse(bad_prefix, {"--store.backend=mongodb", "--store.mongodb.database-prefix=a.b"}),
             "database-prefix"));
}

BOOST_AUTO_TEST_CASE(placement_selects_shards) {
  node_config cfg;
  BOOST_TEST(parse(cfg, {"--node.shards=8", "--node.placement=[\"user:2-4\"]"}).empty());
  BOOST_TEST(hosted_shards(cfg, "user") == (std::vector<uint32_t>{2, 3, 4}));
  BOOST_TEST(hosted_shards(cfg, "auth").size() == 8u);
  node_config bad;
  BOOST_TEST(
    mentions(parse(bad, {"--node.shards=8", "--node.placement=[\"user:5-9\"]"}), "node.placement"));
  node_config lonely;
  BOOST_TEST(mentions(parse(lonely, {"--cluster.seeds=[\"127.0.0.1:1\"]"}), "cluster.listen"));
}

BOOST_FIXTURE_TEST_CASE(a_clustered_node_needs_a_valid_certificate_of_the_cluster_ca, fixture) {
  auto certs = dir.file("certs"), rogue = dir.file("rogue");
  test::make_certs(certs, {"a", "b"});
  test::make_certs(rogue, {"a"});
  auto listen = std::string{"--cluster.listen=127.0.0.1:7999"};
  node_config good;
  auto args = test::tls_args(certs, "a");
  args.push_back(listen);
  BOOST_TEST(parse(good, args).empty());

  node_config plain;
  BOOST_TEST(mentions(parse(plain, {listen}), "mutual TLS only"));
  node_config seeds_only;
  BOOST_TEST(mentions(parse(seeds_only, {"--cluster.seeds=[\"127.0.0.1:1\"]"}), "mutual TLS only"));
  node_config no_ca;
  BOOST_TEST(mentions(parse(no_ca, {listen, "--openssl.certificate=" + certs + "/a.pem",
                                    "--openssl.key=" + certs + "/a.key"}),
                      "openssl.cafile"));
  node_config missing;
  auto m = test::tls_args(certs, "c");
  m.push_back(listen);
  BOOST_TEST(mentions(parse(missing, m), "cannot read " + certs + "/c.pem"));
  node_config wrong_key;
  BOOST_TEST(mentions(parse(wrong_key, {listen, "--openssl.certificate=" + certs + "/a.pem",
                                        "--openssl.key=" + certs + "/b.key",
                                        "--openssl.cafile=" + certs + "/ca.pem"}),
                      "does not belong"));
  node_config other_ca;
  BOOST_TEST(mentions(
    parse(other_ca, {listen, "--openssl.certificate=" + rogue + "/a.pem",
                     "--openssl.key=" + rogue + "/a.key", "--openssl.cafile=" + certs + "/ca.pem"}),
    "not valid for this cluster's CA"));
  node_config not_pem;
  BOOST_TEST(mentions(
    parse(not_pem, {listen, "--openssl.certificate=" + write("not a cert"),
                    "--openssl.key=" + certs + "/a.key", "--openssl.cafile=" + certs + "/ca.pem"}),
    "is not a PEM certificate"));
  // Any openssl key alone (CAF would turn authentication on and abort at start).
  node_config half;
  BOOST_TEST(
    mentions(parse(half, {"--openssl.cafile=" + certs + "/ca.pem"}), "openssl.certificate"));
}

BOOST_FIXTURE_TEST_CASE(a_services_settings_live_in_its_own_group, fixture) {
  // auth declares its settings (service_option); the node parses them and the
  // service reads only its own group.
  auto f = write("[auth]\npwhash-ops=3\nsession-ttl=2h\n");
  node_config cfg;
  auto problems = parse(cfg, {"--config", f, "--auth.pwhash-mem-kib=16"});
  BOOST_TEST(problems.empty());
  service_settings auth{&caf::content(cfg), "auth"};
  BOOST_TEST(auth.integer("pwhash-ops", 0) == 3);
  BOOST_TEST(auth.integer("pwhash-mem-kib", 0) == 16);
  BOOST_TEST(auth.duration("session-ttl", std::chrono::seconds(1)).count() == 2 * 3600 * 1000);
  BOOST_TEST(auth.integer("not-declared", 7) == 7);
  node_config low;
  BOOST_TEST(mentions(parse(low, {"--auth.pwhash-ops=0"}), "auth.pwhash-ops must be at least 1"));
  node_config unknown;
  BOOST_TEST(
    mentions(parse(unknown, {"--config", write("[auth]\npwhash-opps=3\n")}), "auth.pwhash-opps"));
}

BOOST_AUTO_TEST_CASE(a_test_hook_is_refused_outside_tests) {
  unsetenv("CUSTODIAN_TEST_HOOKS");
  node_config cfg;
  BOOST_TEST(mentions(parse(cfg, {"--watchhistory.crash-on-title=boom"}),
                      "watchhistory.crash-on-title is a test hook"));
  setenv("CUSTODIAN_TEST_HOOKS", "1", 1);
  node_config allowed;
  BOOST_TEST(!mentions(parse(allowed, {"--watchhistory.crash-on-title=boom"}), "test hook"));
  unsetenv("CUSTODIAN_TEST_HOOKS");
}
