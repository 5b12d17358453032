#include "runtime/gateway/job_routes.hpp"

#include "runtime/gateway/errors.hpp"
#include "api.pb.h"
#include "runtime/common/ids.hpp"
#include "runtime/common/json.hpp"
#include "runtime/gateway/requests.hpp"
#include "runtime/saga/saga.hpp"
#include "runtime/service/helpers.hpp"
#include "runtime/service/service_logic.hpp"

#include <algorithm>
#include <cctype>
#include <functional>
#include <map>
#include <mutex>

namespace custodian {

namespace {

bool one_of(const std::string& v, std::initializer_list<const char*> allowed) {
  return std::any_of(allowed.begin(), allowed.end(), [&](const char* a) { return v == a; });
}

/// The answers of one fan-out, gathered as they arrive (CAF worker threads).
struct gathered {
  std::mutex mtx;
  size_t outstanding = 0;
  std::vector<v1::Reply> ok;
  std::vector<std::string> unreachable;
  std::function<void(std::vector<v1::Reply>, std::vector<std::string>)> done;

  void missing(const std::string& service) {
    if (std::find(unreachable.begin(), unreachable.end(), service) == unreachable.end())
      unreachable.push_back(service);
  }
};

/// Up to `limit` items of every answer, by id descending, without duplicates;
/// `next` is the last id shown when more remain.
template <class Item, class Page, class Items, class Add>
void merge_page(const std::vector<v1::Reply>& replies, uint32_t limit, Items items, Add add,
                Page& page) {
  std::map<std::string, Item, std::greater<>> by_id;
  for (auto& r : replies)
    for (auto& it : items(r))
      by_id.emplace(it.first, it.second);
  uint32_t shown = 0;
  std::string last;
  for (auto& [id, it] : by_id) {
    if (shown == limit) {
      page.set_next(last);
      break;
    }
    add(page, it);
    last = id;
    ++shown;
  }
}

}  // namespace

std::string parse_job_list_query(const http::request& req, job_list_query& out) {
  if (auto k = req.query_param("kind")) {
    if (!one_of(*k, {"register", "erase", "export"}))
      return "kind must be register, erase or export";
    out.kind = *k;
  }
  if (auto s = req.query_param("state")) {
    if (!one_of(*s, {"running", "held", "done", "failed"}))
      return "state must be running, held, done or failed";
    out.state = *s;
  }
  if (auto l = req.query_param("limit")) {
    if (l->empty() || l->size() > 4
        || !std::all_of(l->begin(), l->end(),
                        [](unsigned char ch) { return std::isdigit(ch) != 0; })
        || std::stoul(*l) < 1 || std::stoul(*l) > 1000)
      return "limit must be a number from 1 to 1000";
    out.limit = static_cast<uint32_t>(std::stoul(*l));
  }
  if (auto a = req.query_param("after")) {
    if (!is_id(*a))
      return "after must be the `next` of a previous page";
    out.after = *a;
  }
  return "";
}

void ask_every_node(std::shared_ptr<caller> c, std::shared_ptr<router> rt,
                    const std::vector<std::string>& services, const v1::Envelope& env,
                    std::function<void(std::vector<v1::Reply>, std::vector<std::string>)> done) {
  auto g = std::make_shared<gathered>();
  g->done = std::move(done);
  std::vector<std::pair<std::string, uint32_t>> calls;
  for (auto& svc : services) {
    auto view = rt->owners(svc);
    if (view.unrouted > 0)
      g->missing(svc);
    for (auto& [owner, shard] : view.one_shard_each)
      calls.emplace_back(svc, shard);
  }
  g->outstanding = calls.size();
  if (calls.empty())
    return g->done({}, g->unreachable);
  for (auto& [svc, shard] : calls)
    c->call_shard(svc, shard, env, [g, svc = svc](v1::Reply r) {
      std::lock_guard<std::mutex> lock{g->mtx};
      if (r.status() == v1::Reply::OK)
        g->ok.push_back(std::move(r));
      else
        g->missing(svc);
      if (--g->outstanding == 0)
        g->done(std::move(g->ok), std::move(g->unreachable));
    });
}

void ask_job_holders(std::shared_ptr<caller> c,
                     std::shared_ptr<const std::vector<std::string>> holders, size_t i,
                     std::string job_id, v1::Envelope env, std::function<void(v1::Reply)> k) {
  // A job lives with the service that coordinates its kind: ask each in turn.
  if (i >= holders->size())
    return k(make_reply(v1::Reply::NOT_FOUND, "no such job"));
  auto svc = (*holders)[i];
  c->call(svc, job_id, env, [c, holders, i, job_id, env, k](v1::Reply r) {
    if (r.status() != v1::Reply::NOT_FOUND)
      return k(std::move(r));
    ask_job_holders(c, holders, i + 1, job_id, env, k);
  });
}

namespace {

void install_job_list(http::server& s, std::shared_ptr<caller> c, std::shared_ptr<router> rt,
                      std::vector<std::string> holders) {
  s.route("GET", "/v1/jobs",
          [c, rt, holders](std::shared_ptr<const http::request> req, http::responder res) {
            c->authenticate(*req, res, [c, rt, holders, req, res](v1::SessionClaims who) {
              if (!caller::is_admin(who))
                return res(api_error(errc::forbidden, "only an admin lists jobs"));
              job_list_query q;
              if (auto err = parse_job_list_query(*req, q); !err.empty())
                return res(api_error(errc::invalid, err));
              v1::Envelope env;
              auto* lj = env.mutable_command()->mutable_list_jobs();
              lj->set_kind(q.kind);
              lj->set_state(q.state);
              lj->set_limit(q.limit + 1);  // one more than shown: whether a next page exists
              lj->set_before_id(q.after);
              ask_every_node(
                c, rt, holders, env,
                [res, limit = q.limit](std::vector<v1::Reply> replies,
                                       std::vector<std::string> unreachable) {
                  if (replies.empty())
                    return res(
                      api_error(errc::unavailable, "no node holding jobs answered; retry later"));
                  v1::JobPage page;
                  merge_page<v1::JobStatus>(
                    replies, limit,
                    [](const v1::Reply& r) {
                      std::vector<std::pair<std::string, v1::JobStatus>> out;
                      for (auto& j : r.job_list().jobs())
                        out.emplace_back(j.job_id(), j);
                      return out;
                    },
                    [](v1::JobPage& p, const v1::JobStatus& j) { *p.add_jobs() = j; }, page);
                  for (auto& u : unreachable)
                    page.add_unreachable(u);
                  res(http::json(200, json::print(page)));
                });
            });
          });
}

void install_audit(http::server& s, std::shared_ptr<caller> c, std::shared_ptr<router> rt,
                   std::vector<std::string> holders) {
  s.route("GET", "/v1/audit",
          [c, rt, holders](std::shared_ptr<const http::request> req, http::responder res) {
            c->authenticate(*req, res, [c, rt, holders, req, res](v1::SessionClaims who) {
              if (!caller::is_admin(who))
                return res(api_error(errc::forbidden, "only an admin reads the audit trail"));
              job_list_query q;  // limit and after only
              if (req->query_param("kind") || req->query_param("state"))
                return res(api_error(errc::invalid, "the audit trail takes limit and after only"));
              if (auto err = parse_job_list_query(*req, q); !err.empty())
                return res(api_error(errc::invalid, err));
              v1::Envelope env;
              env.mutable_command()->mutable_list_audit()->set_before_id(q.after);
              env.mutable_command()->mutable_list_audit()->set_limit(q.limit + 1);
              ask_every_node(
                c, rt, holders, env,
                [res, limit = q.limit](std::vector<v1::Reply> replies,
                                       std::vector<std::string> unreachable) {
                  if (replies.empty())
                    return res(api_error(errc::unavailable,
                                         "no node holding the audit trail answered; retry later"));
                  v1::AuditPage page;
                  merge_page<v1::AuditEntry>(
                    replies, limit,
                    [](const v1::Reply& r) {
                      std::vector<std::pair<std::string, v1::AuditEntry>> out;
                      for (auto& e : r.audit().entries())
                        out.emplace_back(e.id(), e);
                      return out;
                    },
                    [](v1::AuditPage& p, const v1::AuditEntry& e) {
                      auto* shown = p.add_entries();
                      *shown = e;
                      shown->clear_id();  // the cursor is the page's `next`
                    },
                    page);
                  for (auto& u : unreachable)
                    page.add_unreachable(u);
                  res(http::json(200, json::print(page)));
                });
            });
          });
}

void install_job_by_id(http::server& s, std::shared_ptr<caller> c,
                       std::shared_ptr<const std::vector<std::string>> holders) {
  s.route("GET", "/v1/jobs/{id}",
          [c, holders](std::shared_ptr<const http::request> req, http::responder res) {
            auto job_id = req->params[0];
            if (!is_id(job_id))
              return res(api_error(errc::not_found, "no such job"));
            v1::Envelope env;
            env.mutable_command()->mutable_get_job()->set_job_id(job_id);
            ask_job_holders(c, holders, 0, job_id, env, [c, req, res](v1::Reply r) {
              if (r.status() != v1::Reply::OK)
                return res(reply_error(r));
              auto status = r.job_status();
              auto show = [res, status] {
                auto body = json::print_job(status);
                if (body.empty())
                  return res(api_error(errc::internal,
                                       "an export section has a type this node does not know"));
                res(http::json(200, body));
              };
              // An export job holds the user's data: only its owner (or an admin) may
              // read it. Erase and register jobs hold no personal data and are readable
              // by their id alone.
              if (status.kind() != saga::to_string(v1::JOB_EXPORT))
                return show();
              c->authorize(*req, res, status.user_id(), [show](v1::SessionClaims) { show(); });
            });
          });
}

void install_extend(http::server& s, std::shared_ptr<caller> c,
                    std::shared_ptr<const std::vector<std::string>> holders) {
  s.route("POST", "/v1/jobs/{id}/extend",
          [c, holders](std::shared_ptr<const http::request> req, http::responder res) {
            c->authenticate(*req, res, [c, holders, req, res](v1::SessionClaims who) {
              if (!caller::is_admin(who))
                return res(api_error(errc::forbidden, "only an admin extends a deadline"));
              v1::ExtendRequest body;
              if (auto err = json::parse(req->body, body); !err.empty())
                return res(api_error(errc::invalid, err));
              if (auto err = check_text("reason", body.reason(), 1, 500); !err.empty())
                return res(api_error(errc::invalid, err));
              auto job_id = req->params[0];
              if (!is_id(job_id))
                return res(api_error(errc::not_found, "no such job"));
              v1::Envelope env;
              env.set_actor(caller::actor(who, ""));
              auto* x = env.mutable_command()->mutable_extend_job();
              x->set_job_id(job_id);
              x->set_reason(body.reason());
              ask_job_holders(c, holders, 0, job_id, env, [res](v1::Reply r) {
                if (r.status() != v1::Reply::OK)
                  return res(reply_error(r));
                res(http::json(200, json::print(r.job_status())));
              });
            });
          });
}

void install_retry(http::server& s, std::shared_ptr<caller> c,
                   std::shared_ptr<const std::vector<std::string>> holders) {
  s.route("POST", "/v1/jobs/{id}/retry",
          [c, holders](std::shared_ptr<const http::request> req, http::responder res) {
            c->authenticate(*req, res, [c, holders, req, res](v1::SessionClaims who) {
              if (!caller::is_admin(who))
                return res(api_error(errc::forbidden, "only an admin retries a job"));
              auto job_id = req->params[0];
              if (!is_id(job_id))
                return res(api_error(errc::not_found, "no such job"));
              v1::Envelope env;
              env.set_actor(caller::actor(who, ""));
              env.mutable_command()->mutable_retry_job()->set_job_id(job_id);
              ask_job_holders(c, holders, 0, job_id, env, [res](v1::Reply r) {
                if (r.status() != v1::Reply::OK)
                  return res(reply_error(r));
                res(http::json(202, json::print(r.job_status())));
              });
            });
          });
}

void install_certificate(http::server& s, std::shared_ptr<caller> c,
                         std::shared_ptr<const std::vector<std::string>> holders) {
  s.route("GET", "/v1/jobs/{id}/certificate",
          [c, holders](std::shared_ptr<const http::request> req, http::responder res) {
            auto job_id = req->params[0];
            if (!is_id(job_id))
              return res(api_error(errc::not_found, "no such erase job"));
            v1::Envelope env;
            env.mutable_command()->mutable_get_certificate()->set_job_id(job_id);
            // Readable by the job id alone, like the erase job itself: it holds no
            // personal data.
            ask_job_holders(c, holders, 0, job_id, env, [res](v1::Reply r) {
              if (r.status() == v1::Reply::NOT_FOUND && r.message() == "no such job")
                r.set_message("no such erase job");
              if (r.status() != v1::Reply::OK)
                return res(reply_error(r));
              res(http::json(200, json::print(r.certificate())));
            });
          });
}

/// GET /v1/keys: the certificate keys of every node that coordinates erasures.
void install_keys(http::server& s, std::shared_ptr<caller> c, std::shared_ptr<router> rt,
                  std::string coordinator) {
  s.route(
    "GET", "/v1/keys",
    [c, rt, coordinator](std::shared_ptr<const http::request>, http::responder res) {
      v1::Envelope env;
      env.mutable_command()->mutable_list_certificate_keys();
      ask_every_node(
        c, rt, {coordinator}, env, [res](std::vector<v1::Reply> replies, std::vector<std::string>) {
          if (replies.empty())
            return res(
              api_error(errc::unavailable, "no node coordinating erasures answered; retry later"));
          std::map<std::string, v1::PublishedKey> keys;
          for (auto& r : replies)
            for (auto& k : r.published_keys().keys())
              keys.emplace(k.key_id(), k);
          v1::PublishedKeys out;
          for (auto& [id, k] : keys)
            *out.add_keys() = k;
          res(http::json(200, json::print(out)));
        });
    });
}

}  // namespace

void install_job_routes(http::server& s, std::shared_ptr<caller> c, std::shared_ptr<router> rt,
                        std::vector<std::string> holders, std::string erase_coordinator) {
  auto shared = std::make_shared<const std::vector<std::string>>(holders);
  install_job_list(s, c, rt, holders);
  install_audit(s, c, rt, std::move(holders));
  install_job_by_id(s, c, shared);
  install_extend(s, c, shared);
  install_retry(s, c, shared);
  install_certificate(s, c, shared);
  install_keys(s, c, rt, std::move(erase_coordinator));
}

}  // namespace custodian
