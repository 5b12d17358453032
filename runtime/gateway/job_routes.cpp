#include "runtime/gateway/job_routes.hpp"

#include "api.pb.h"
#include "runtime/common/ids.hpp"
#include "runtime/gateway/json.hpp"
#include "runtime/gateway/requests.hpp"
#include "runtime/saga/saga.hpp"
#include "runtime/service/helpers.hpp"
#include "runtime/service/service_logic.hpp"

#include <algorithm>
#include <cctype>
#include <map>
#include <mutex>

namespace custodian {

namespace {

bool one_of(const std::string& v, std::initializer_list<const char*> allowed) {
  return std::any_of(allowed.begin(), allowed.end(), [&](const char* a) { return v == a; });
}

/// The answers of one page's calls, merged as they arrive (CAF worker threads).
struct page_merge {
  std::mutex mtx;
  size_t outstanding = 0;
  uint32_t limit = 100;
  std::map<std::string, v1::JobStatus, std::greater<>> jobs;  ///< by job id, newest first
  std::vector<std::string> unreachable;
  size_t answered = 0;
  http::responder res;

  explicit page_merge(http::responder r) : res(std::move(r)) {}

  void missing(const std::string& service) {
    if (std::find(unreachable.begin(), unreachable.end(), service) == unreachable.end())
      unreachable.push_back(service);
  }

  void add(const std::string& service, const v1::Reply& r) {
    std::lock_guard<std::mutex> g{mtx};
    if (r.status() == v1::Reply::OK) {
      ++answered;
      for (auto& j : r.job_list().jobs())
        jobs.emplace(j.job_id(), j);
    } else {
      missing(service);
    }
    if (--outstanding == 0)
      finish();
  }

  void finish() {
    if (answered == 0)
      return res(http::error(503, "no node holding jobs answered; retry later"));
    v1::JobPage page;
    for (auto& [id, j] : jobs) {
      if (static_cast<uint32_t>(page.jobs_size()) == limit) {
        page.set_next(page.jobs(page.jobs_size() - 1).job_id());
        break;
      }
      *page.add_jobs() = j;
    }
    std::sort(unreachable.begin(), unreachable.end());
    for (auto& u : unreachable)
      page.add_unreachable(u);
    res(http::json(200, json::print(page)));
  }
};

} // namespace

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
    if (l->empty() || l->size() > 4 || !std::all_of(l->begin(), l->end(), [](unsigned char ch) { return std::isdigit(ch) != 0; })
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
  s.route("GET", "/v1/jobs", [c, rt, holders](std::shared_ptr<const http::request> req,
                                               http::responder res) {
    c->authenticate(*req, res, [c, rt, holders, req, res](v1::SessionClaims who) {
      if (!caller::is_admin(who))
        return res(http::error(403, "only an admin lists jobs"));
      job_list_query q;
      if (auto err = parse_job_list_query(*req, q); !err.empty())
        return res(http::error(400, err));
      auto merge = std::make_shared<page_merge>(res);
      merge->limit = q.limit;
      std::vector<std::pair<std::string, uint32_t>> calls;
      for (auto& svc : holders) {
        auto view = rt->owners(svc);
        if (view.unrouted > 0)
          merge->missing(svc);
        for (auto& [owner, shard] : view.one_shard_each)
          calls.emplace_back(svc, shard);
      }
      merge->outstanding = calls.size();
      if (calls.empty())
        return res(http::error(503, "no node holding jobs is reachable; retry later"));
      for (auto& [svc, shard] : calls) {
        v1::Envelope env;
        auto* lj = env.mutable_command()->mutable_list_jobs();
        lj->set_kind(q.kind);
        lj->set_state(q.state);
        lj->set_limit(q.limit + 1);  // one more than shown: whether a next page exists
        lj->set_before_id(q.after);
        c->call_shard(svc, shard, env, [merge, svc = svc](v1::Reply r) { merge->add(svc, r); });
      }
    });
  });
}


void install_job_by_id(http::server& s, std::shared_ptr<caller> c,
                       std::shared_ptr<const std::vector<std::string>> holders) {
  s.route("GET", "/v1/jobs/{id}", [c, holders](std::shared_ptr<const http::request> req,
                                               http::responder res) {
    auto job_id = req->params[0];
    if (!is_id(job_id))
      return res(http::error(404, "no such job"));
    v1::Envelope env;
    env.mutable_command()->mutable_get_job()->set_job_id(job_id);
    ask_job_holders(c, holders, 0, job_id, env, [c, req, res](v1::Reply r) {
      if (r.status() != v1::Reply::OK)
        return res(reply_error(r));
      auto status = r.job_status();
      auto show = [res, status] {
        auto body = json::print_job(status);
        if (body.empty())
          return res(http::error(500, "an export section has a type this node does not know"));
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
  s.route("POST", "/v1/jobs/{id}/extend", [c, holders](std::shared_ptr<const http::request> req,
                                                       http::responder res) {
    c->authenticate(*req, res, [c, holders, req, res](v1::SessionClaims who) {
      if (!caller::is_admin(who))
        return res(http::error(403, "only an admin extends a deadline"));
      v1::ExtendRequest body;
      if (auto err = json::parse(req->body, body); !err.empty())
        return res(http::error(400, err));
      if (auto err = check_text("reason", body.reason(), 1, 500); !err.empty())
        return res(http::error(400, err));
      auto job_id = req->params[0];
      if (!is_id(job_id))
        return res(http::error(404, "no such job"));
      v1::Envelope env;
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

void install_certificate(http::server& s, std::shared_ptr<caller> c,
                         std::shared_ptr<const std::vector<std::string>> holders) {
  s.route("GET", "/v1/jobs/{id}/certificate", [c, holders](std::shared_ptr<const http::request> req,
                                                           http::responder res) {
    auto job_id = req->params[0];
    if (!is_id(job_id))
      return res(http::error(404, "no such erase job"));
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
  struct merge {
    std::mutex mtx;
    size_t outstanding = 0, answered = 0;
    std::map<std::string, v1::PublishedKey> keys;
  };
  s.route("GET", "/v1/keys", [c, rt, coordinator](std::shared_ptr<const http::request>,
                                                  http::responder res) {
    auto view = rt->owners(coordinator);
    if (coordinator.empty() || view.one_shard_each.empty())
      return res(http::error(503, "no node coordinating erasures is reachable; retry later"));
    auto m = std::make_shared<merge>();
    m->outstanding = view.one_shard_each.size();
    for (auto& [owner, shard] : view.one_shard_each) {
      v1::Envelope env;
      env.mutable_command()->mutable_list_certificate_keys();
      c->call_shard(coordinator, shard, env, [m, res](v1::Reply r) {
        std::lock_guard<std::mutex> g{m->mtx};
        if (r.status() == v1::Reply::OK) {
          ++m->answered;
          for (auto& k : r.published_keys().keys())
            m->keys.emplace(k.key_id(), k);
        }
        if (--m->outstanding > 0)
          return;
        if (m->answered == 0)
          return res(http::error(503, "no node coordinating erasures answered; retry later"));
        v1::PublishedKeys out;
        for (auto& [id, k] : m->keys)
          *out.add_keys() = k;
        res(http::json(200, json::print(out)));
      });
    }
  });
}

} // namespace

void install_job_routes(http::server& s, std::shared_ptr<caller> c, std::shared_ptr<router> rt,
                        std::vector<std::string> holders, std::string erase_coordinator) {
  auto shared = std::make_shared<const std::vector<std::string>>(holders);
  install_job_list(s, c, rt, std::move(holders));
  install_job_by_id(s, c, shared);
  install_extend(s, c, shared);
  install_certificate(s, c, shared);
  install_keys(s, c, rt, std::move(erase_coordinator));
}

} // namespace custodian
