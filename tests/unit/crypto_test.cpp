// libsodium sealing and the per-user keyring (crypto-shredding).
#define BOOST_TEST_MODULE crypto
#include <boost/test/unit_test.hpp>

#include "runtime/crypto/keyring.hpp"
#include "runtime/crypto/token.hpp"
#include "runtime/store/sqlite_store.hpp"
#include "tests/support/temp_dir.hpp"

#include <sys/stat.h>

#include <fstream>

using namespace custodian;
using namespace custodian::crypto;

BOOST_AUTO_TEST_CASE(seal_open_and_tamper) {
  auto k = random_key();
  auto a = seal(k, "ada@example.com", "user/u1/email");
  auto b = seal(k, "ada@example.com", "user/u1/email");
  BOOST_TEST(a != b);  // random nonce per field
  BOOST_TEST(a.find("ada@example.com") == std::string::npos);
  BOOST_TEST(*open(k, a, "user/u1/email") == "ada@example.com");
  BOOST_TEST(!open(k, a, "user/u2/email"));  // bound to the user and field
  BOOST_TEST(!open(random_key(), a, "user/u1/email"));
  auto t = a;
  t[t.size() - 1] ^= 1;
  BOOST_TEST(!open(k, t, "user/u1/email"));
  BOOST_TEST(!open(k, "short", "x"));
}

BOOST_AUTO_TEST_CASE(master_key_file_is_created_0600_and_checked) {
  test::temp_dir dir;
  key32 k1, k2;
  auto f = dir.file("master.key");
  BOOST_TEST(load_or_create_master_key(f, k1).empty());
  struct stat st {};
  ::stat(f.c_str(), &st);
  BOOST_TEST((st.st_mode & 0777) == 0600u);
  BOOST_TEST(load_or_create_master_key(f, k2).empty());
  BOOST_TEST((k1 == k2));
  ::chmod(f.c_str(), 0644);
  BOOST_TEST(load_or_create_master_key(f, k2).find("chmod 600") != std::string::npos);
  std::ofstream{dir.file("short.key")} << "abc";
  ::chmod(dir.file("short.key").c_str(), 0600);
  BOOST_TEST(load_or_create_master_key(dir.file("short.key"), k2).find("32 bytes")
             != std::string::npos);
}

BOOST_AUTO_TEST_CASE(destroyed_key_makes_a_copy_of_the_data_unreadable) {
  test::temp_dir dir;
  auto master = random_key();
  auto st =
    std::make_shared<store::sqlite_store>(store::sqlite_options{dir.file("user.db"), "full"});
  keyring keys{master, "user", st};
  auto sealed = keys.seal("u1", "Ada Lovelace", "display_name");
  auto other = keys.seal("u2", "Grace Hopper", "display_name");
  BOOST_TEST(*keys.open("u1", sealed, "display_name") == "Ada Lovelace");
  keys.destroy("u1");
  BOOST_TEST(!keys.open("u1", sealed, "display_name"));  // the ciphertext copy is dead
  BOOST_TEST(*keys.open("u2", other, "display_name") == "Grace Hopper");
  // Another node's master key cannot unseal this node's key table.
  BOOST_CHECK_THROW((keyring{random_key(), "user", st}), store::store_error);
  // Index keys are keyed: same input, same key; another key table, another key.
  auto st2 =
    std::make_shared<store::sqlite_store>(store::sqlite_options{dir.file("other.db"), "full"});
  keyring elsewhere{master, "user", st2};
  BOOST_TEST(keys.index_key("email", "ada@example.com")
             == keys.index_key("email", "ada@example.com"));
  BOOST_TEST(keys.index_key("email", "ada@example.com")
             != elsewhere.index_key("email", "ada@example.com"));
  st2->close();
  st->close();
  for (auto f : {"user.db", "user.keys.db"})
    BOOST_TEST(test::slurp(dir.file(f)).find("Ada") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(master_key_rotation_reseals_every_key) {
  test::temp_dir dir;
  auto old_master = random_key(), new_master = random_key();
  auto st =
    std::make_shared<store::sqlite_store>(store::sqlite_options{dir.file("auth.db"), "full"});
  std::string sealed, index_before;
  {
    keyring keys{old_master, "auth", st};
    sealed = keys.seal("u1", "ada@example.com", "email");
    index_before = keys.index_key("email", "ada@example.com");
  }
  auto n = keyring::rewrap(*st, "auth", old_master, new_master);
  BOOST_TEST(n == 2u);  // u1's data key and the index secret
  BOOST_TEST(keyring::rewrap(*st, "auth", old_master, new_master) == 0u);  // resumable
  keyring rotated{new_master, "auth", st};
  BOOST_TEST(*rotated.open("u1", sealed, "email") == "ada@example.com");
  BOOST_TEST(rotated.index_key("email", "ada@example.com") == index_before);  // lookups still work
  BOOST_CHECK_THROW((keyring{old_master, "auth", st}), store::store_error);  // old key is useless
}

BOOST_AUTO_TEST_CASE(a_remembered_token_is_still_checked_for_its_key_signature_and_expiry) {
  std::array<unsigned char, 32> seed{}, other_seed{};
  seed[0] = 1;
  other_seed[0] = 2;
  auto keys = keys_from_seed(seed), other = keys_from_seed(other_seed);
  std::string pk(keys.public_key.begin(), keys.public_key.end());
  std::string other_pk(other.public_key.begin(), other.public_key.end());
  v1::SessionClaims c;
  c.set_user_id("u1");
  c.set_session_id("s1");
  c.set_expires_ms(10'000);
  auto token = sign_token(c, keys);

  verified_tokens cache{2};
  auto first = cache.verify(token, pk, 1'000);
  BOOST_TEST_REQUIRE(first.has_value());
  BOOST_TEST(first->user_id() == "u1");
  auto again = cache.verify(token, pk, 2'000);
  BOOST_TEST_REQUIRE(again.has_value());
  BOOST_TEST(again->session_id() == "s1");
  BOOST_TEST(cache.hits() == 1u);
  BOOST_TEST(cache.checks() == 1u);

  // The same claims with one signature bit flipped: checked, refused.
  auto forged = token;
  forged[forged.size() - 5] = forged[forged.size() - 5] == 'A' ? 'B' : 'A';
  BOOST_TEST(!cache.verify(forged, pk, 2'000).has_value());
  // Another key does not vouch for what this one signed.
  BOOST_TEST(!cache.verify(token, other_pk, 2'000).has_value());
  BOOST_TEST(cache.checks() == 3u);
  // Expiry is checked on every use, remembered or not.
  BOOST_TEST(!cache.verify(token, pk, 10'000).has_value());
  // Full: it starts again empty and still answers correctly.
  for (int i = 0; i < 3; ++i) {
    v1::SessionClaims ci = c;
    ci.set_session_id("s" + std::to_string(i + 2));
    auto ti = sign_token(ci, keys);
    BOOST_TEST(cache.verify(ti, pk, 1'000)->session_id() == ci.session_id());
  }
  BOOST_TEST(cache.verify(token, pk, 1'000)->user_id() == "u1");
}
