// The service contract, enforced by the runtime: a service takes part in every
// lifecycle step unless it declares it holds no personal data, and one that
// declares so cannot keep anything of a person; no service's own commit
// destroys other services' keys. `catalog` below is a test
// plug-in (a fake, named so) that declares no personal data and then tries to
// write a user's records, an index row of a user, and a sealed field.
#define BOOST_TEST_MODULE contract
#include <boost/test/unit_test.hpp>

#include "runtime/common/errc.hpp"
#include "runtime/common/ids.hpp"
#include "runtime/testkit/testkit.hpp"

#include <google/protobuf/wrappers.pb.h>

using namespace custodian;

namespace {

const std::string catalog_reason = "film titles and their metadata; nothing about a person";

/// A fake service for this test only: each command names what it tries.
class fake_catalog_logic final : public service_logic {
public:
  explicit fake_catalog_logic(std::shared_ptr<crypto::service_keys> keys)
    : keys_(std::move(keys)) {}
  const std::string& name() const override { return name_; }

  outcome handle(const v1::Envelope& env, store_view&) override {
    outcome out;
    out.reply = make_reply(v1::Reply::OK);
    auto cmd = command_as<google::protobuf::StringValue>(env);
    auto what = cmd ? cmd->value() : std::string();
    if (what == "title")  // the catalog's own data: allowed
      out.commit.index_puts.push_back(store::index_row{"title", "tt0113277", "", "Heat"});
    else if (what == "event")
      out.commit.events.emplace_back(env.user_id(), "watched tt0113277");
    else if (what == "index-of-user")
      out.commit.index_puts.push_back(store::index_row{"likes", env.user_id(), env.user_id(), "x"});
    else if (what == "seal")
      out.commit.index_puts.push_back(store::index_row{
        "note", "n1", "", keys_->seal(env.user_id(), "likes heist films", "note")});
    else if (what == "shred-node") {  // its own data, and every service's key of the user
      out.commit.index_puts.push_back(store::index_row{"title", "tt2", "", "x"});
      out.commit.destroy_node_keys.push_back(env.user_id());
    } else if (what == "unset") {  // its own data, but an answer left unset
      out = outcome{};
      out.commit.index_puts.push_back(store::index_row{"title", "tt1", "", "x"});
    } else
      out.reply = make_reply(v1::Reply::INVALID, "unknown command");
    return out;
  }

private:
  std::string name_ = "catalog";
  std::shared_ptr<crypto::service_keys> keys_;
};

service_descriptor catalog() {
  service_descriptor d;
  d.name = "catalog";
  d.make = [](const service_context& ctx) {
    return std::make_shared<fake_catalog_logic>(ctx.keys);
  };
  d.holds_personal_data = false;
  d.no_personal_data_reason = catalog_reason;
  return d;
}

std::shared_ptr<const service_registry> with_catalog() {
  auto reg = std::make_shared<service_registry>(builtin_services());
  reg->add(catalog());
  return reg;
}

v1::Reply try_(testkit::service_kit& kit, const std::string& uid, const std::string& what) {
  google::protobuf::StringValue cmd;
  cmd.set_value(what);
  return kit.command(uid, cmd);
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_service_takes_part_in_every_step_unless_it_holds_no_personal_data) {
  auto reg = with_catalog();
  for (auto step : {v1::STEP_PROVISION, v1::STEP_ERASE, v1::STEP_EXPORT}) {
    auto who = reg->participants(step);
    BOOST_TEST(std::count(who.begin(), who.end(), "catalog") == 0, static_cast<int>(step));
    for (auto& d : reg->native()) {
      if (!d.holds_personal_data)
        continue;
      // The identity service creates the user itself: it is not asked to provision.
      bool expected = !(step == v1::STEP_PROVISION && d.identity);
      BOOST_TEST(std::count(who.begin(), who.end(), d.name) == (expected ? 1 : 0),
                 d.name << " step " << static_cast<int>(step));
    }
  }
  auto none = reg->without_personal_data();
  BOOST_TEST_REQUIRE(none.size() == 1u);
  BOOST_TEST(none[0].first == "catalog");
  BOOST_TEST(none[0].second == catalog_reason);
}

BOOST_AUTO_TEST_CASE(holding_no_personal_data_must_be_declared_with_a_reason) {
  auto refused = [](service_descriptor d, const std::string& expected) {
    service_registry reg;
    try {
      reg.add(std::move(d));
    } catch (const std::invalid_argument& e) {
      BOOST_TEST(std::string(e.what()).find(expected) != std::string::npos, e.what());
      return;
    }
    BOOST_ERROR("accepted a descriptor that should be refused: " << expected);
  };
  auto d = catalog();
  d.no_personal_data_reason = "";
  refused(d, "say why");
  d.no_personal_data_reason = "titles\nand more";
  refused(d, "one line");
  d.no_personal_data_reason = std::string(201, 'x');
  refused(d, "1-200 bytes");
  d = catalog();
  d.roles = true;
  refused(d, "hold personal data");
  d = catalog();
  d.holds_personal_data = true;  // a reason for holding none, yet holding some
  refused(d, "yet holds some");
}

BOOST_AUTO_TEST_CASE(a_service_without_personal_data_cannot_write_anything_of_a_user) {
  testkit::kit_options opts;
  opts.registry = with_catalog();
  testkit::service_kit kit{catalog(), opts};
  auto uid = new_id();
  BOOST_TEST(try_(kit, uid, "title").status() == v1::Reply::OK);  // its own data is written
  BOOST_TEST(kit.store().index_get("title", "tt0113277").has_value());
  for (auto [what, says] :
       std::vector<std::pair<std::string, std::string>>{{"event", "events"},
                                                        {"index-of-user", "an index row of a user"},
                                                        {"seal", "a user's key"}}) {
    auto r = try_(kit, uid, what);
    BOOST_TEST(r.status() == v1::Reply::INTERNAL, what);
    BOOST_TEST(
      r.message().find("service catalog declares it holds no personal data") != std::string::npos,
      r.message());
    BOOST_TEST(r.message().find(says) != std::string::npos, r.message());
  }
  // Nothing of the user was written: no event, no index row, no key.
  BOOST_TEST(kit.store().read_stream(uid).empty());
  BOOST_TEST(!kit.store().index_get("likes", uid).has_value());
  BOOST_TEST(!kit.store().index_get("note", "n1").has_value());
  BOOST_TEST(!kit.store().key_get(uid).has_value());
}

BOOST_AUTO_TEST_CASE(no_service_destroys_the_keys_of_every_service_of_the_node) {
  // Only the erase coordinator's acceptance names a user in destroy_node_keys
  // (every service's key of the user in the node's key file): a service's
  // own commit that does is refused whole, whatever the service declares.
  testkit::kit_options opts;
  opts.registry = with_catalog();
  testkit::service_kit kit{catalog(), opts};
  auto r = try_(kit, new_id(), "shred-node");
  BOOST_TEST(r.status() == v1::Reply::INTERNAL);
  BOOST_TEST(r.message().find("service catalog's commit destroys the keys of every service")
               != std::string::npos,
             r.message());
  BOOST_TEST(!kit.store().index_get("title", "tt2").has_value());  // nothing of it written
}

BOOST_AUTO_TEST_CASE(an_export_names_each_service_without_personal_data_and_its_reason) {
  testkit::kit_options opts;
  opts.registry = with_catalog();
  testkit::service_kit kit{opts.registry->coordinator(v1::JOB_EXPORT), opts};
  auto uid = new_id();
  kit.provision(uid);
  auto env = kit.envelope(uid);
  env.mutable_command()->mutable_start_export();
  auto job_id = kit.run(env).reply.job().job_id();
  kit.settle_outbox();
  auto q = kit.envelope("");
  q.mutable_command()->mutable_get_job()->set_job_id(job_id);
  auto status = kit.run(q).reply.job_status();
  BOOST_TEST_REQUIRE(status.state() == "done", status.error());
  BOOST_TEST(status.sections().count("catalog") == 0u);
  BOOST_TEST(status.services().count("catalog") == 0u);
  BOOST_TEST_REQUIRE(status.metadata().holds_no_personal_data().count("catalog") == 1u);
  BOOST_TEST(status.metadata().holds_no_personal_data().at("catalog") == catalog_reason);
}

BOOST_AUTO_TEST_CASE(a_reply_left_unset_is_an_internal_error_and_nothing_is_written) {
  testkit::kit_options opts;
  opts.registry = with_catalog();
  testkit::service_kit kit{catalog(), opts};
  auto r = try_(kit, new_id(), "unset");
  BOOST_TEST(r.status() == v1::Reply::INTERNAL);
  BOOST_TEST(r.message().find("without a status") != std::string::npos, r.message());
  BOOST_TEST(!kit.store().index_get("title", "tt1").has_value());
  // On the wire too: an empty answer is not success.
  v1::Reply empty;
  BOOST_TEST_REQUIRE(empty.ParseFromString(""));
  BOOST_TEST(empty.status() != v1::Reply::OK);
  BOOST_TEST(http_status(errc_of(empty.status())) == 500);
}

BOOST_AUTO_TEST_CASE(the_runtime_records_every_writing_reply_so_a_redelivery_changes_nothing) {
  // The fake catalog sets nothing for redeliveries: the runtime keeps the
  // reply of a command that wrote, keyed by its request id.
  testkit::kit_options opts;
  opts.registry = with_catalog();
  testkit::service_kit kit{catalog(), opts};
  google::protobuf::StringValue cmd;
  cmd.set_value("title");
  auto env = kit.command_envelope(new_id(), cmd);
  env.set_at_least_once(true);  // as the outbox sends
  auto first = kit.run(env);
  BOOST_TEST(first.reply.status() == v1::Reply::OK);
  BOOST_TEST(!first.redelivery);
  auto again = kit.run(env);  // applied again, the unique key would answer CONFLICT
  BOOST_TEST(again.reply.status() == v1::Reply::OK, again.reply.message());
  BOOST_TEST(again.redelivery);
}

BOOST_AUTO_TEST_CASE(a_reply_kept_before_ok_was_nine_reads_as_ok) {
  // An earlier version kept an OK reply with no status field (OK was 0): a
  // redelivery answered from it is OK, not an internal error.
  testkit::kit_options opts;
  opts.registry = with_catalog();
  testkit::service_kit kit{catalog(), opts};
  google::protobuf::StringValue cmd;
  cmd.set_value("title");
  auto env = kit.command_envelope(new_id(), cmd);
  env.set_at_least_once(true);
  v1::Reply kept;
  kept.set_message("kept by an earlier version");
  store::commit c;
  c.inbox = store::inbox_row{env.request_id(), "", "P" + kept.SerializeAsString()};
  BOOST_TEST_REQUIRE(kit.store().apply(c).ok());
  auto r = kit.run(env);
  BOOST_TEST(r.redelivery);
  BOOST_TEST(r.reply.status() == v1::Reply::OK);
  BOOST_TEST(r.reply.message() == "kept by an earlier version");
}
