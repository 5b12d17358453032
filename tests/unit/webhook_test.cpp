// Standard Webhooks signing of outgoing calls and the webhook secret file.
#define BOOST_TEST_MODULE webhook_test
#include <boost/test/unit_test.hpp>

#include "runtime/crypto/webhook.hpp"
#include "tests/support/temp_dir.hpp"

#include <sys/stat.h>

#include <fstream>

using namespace custodian;
using namespace custodian::webhook;

namespace {

mode_t mode_of(const std::string& file) {
  struct stat st {};
  ::stat(file.c_str(), &st);
  return st.st_mode & 0777;
}

}  // namespace

// The test vector of the Standard Webhooks reference libraries (test_sign_function
// in libraries/python/tests/test_webhooks.py, TestWebhookSign in the Go library).
BOOST_AUTO_TEST_CASE(specification_test_vector) {
  std::string key;
  BOOST_TEST(parse_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", key).empty());
  BOOST_TEST(key.size() == 24u);
  BOOST_TEST(sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, R"({"test": 2432232314})")
             == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
  // Any change to the id, the timestamp, the body or the key changes the signature.
  auto good = sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, R"({"test": 2432232314})");
  BOOST_TEST(sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJeK", 1614265330, R"({"test": 2432232314})")
             != good);
  BOOST_TEST(sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265331, R"({"test": 2432232314})")
             != good);
  BOOST_TEST(sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, R"({"test": 2432232315})")
             != good);
  BOOST_TEST(sign(key + "x", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, R"({"test": 2432232314})")
             != good);
}

BOOST_AUTO_TEST_CASE(new_secrets_are_32_random_bytes) {
  auto a = new_secret();
  auto b = new_secret();
  BOOST_TEST(a != b);
  BOOST_TEST(a.rfind("whsec_", 0) == 0u);
  std::string key;
  BOOST_TEST(parse_secret(a, key).empty());
  BOOST_TEST(key.size() == 32u);
  BOOST_TEST(sign(key, "m", 1, "{}").rfind("v1,", 0) == 0u);
}

BOOST_AUTO_TEST_CASE(secret_parsing_errors) {
  std::string key = "unchanged";
  auto missing = parse_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", key);
  BOOST_TEST(missing.find("whsec_") != std::string::npos);
  BOOST_TEST(missing.find("MfKQ") == std::string::npos);  // never the secret
  BOOST_TEST(parse_secret("whsec_MfKQ9r8GKYqrTwjU*D8ILPZIo2LaLaSw", key).find("base64")
             != std::string::npos);
  BOOST_TEST(parse_secret("whsec_MfKQ 9r8GKYqrTwjUPD8ILPZIo2LaLaSw", key).find("base64")
             != std::string::npos);
  BOOST_TEST(parse_secret("whsec_", key).find("empty") != std::string::npos);
  BOOST_TEST(parse_secret("whsec_\n", key).find("empty") != std::string::npos);
  BOOST_TEST(!parse_secret("", key).empty());
  BOOST_TEST(!parse_secret("whsec_=", key).empty());
  BOOST_TEST(key == "unchanged");  // untouched on error
  // Trailing whitespace and a final newline, as in a file, are fine.
  BOOST_TEST(parse_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw \r\n", key).empty());
  BOOST_TEST(key.size() == 24u);
}

BOOST_AUTO_TEST_CASE(secret_file_is_created_0600_and_checked) {
  test::temp_dir dir;
  auto f = dir.file("sub/dir/webhook.secret");  // parent directories are created
  std::string k1, k2;
  BOOST_TEST(load_or_create_secret(f, k1).empty());
  BOOST_TEST(mode_of(f) == 0600u);
  BOOST_TEST(k1.size() == 32u);
  BOOST_TEST(test::slurp(f).rfind("whsec_", 0) == 0u);
  BOOST_TEST(load_or_create_secret(f, k2).empty());
  BOOST_TEST(k1 == k2);

  ::chmod(f.c_str(), 0644);
  auto open = load_or_create_secret(f, k2);
  BOOST_TEST(open.find("group or others") != std::string::npos);
  BOOST_TEST(open.find(f) != std::string::npos);

  auto bad = dir.file("bad.secret");
  std::ofstream{bad} << "not a secret\n";
  ::chmod(bad.c_str(), 0600);
  auto invalid = load_or_create_secret(bad, k2);
  BOOST_TEST(invalid.find(bad) != std::string::npos);
  BOOST_TEST(invalid.find("whsec_") != std::string::npos);

  // A secret written by hand (Standard Webhooks allows any length) is accepted.
  auto given = dir.file("given.secret");
  std::ofstream{given} << "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n";
  ::chmod(given.c_str(), 0600);
  BOOST_TEST(load_or_create_secret(given, k2).empty());
  BOOST_TEST(sign(k2, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, R"({"test": 2432232314})")
             == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}
