#pragma once
/// The job routes: GET /v1/jobs/{id}, POST /v1/jobs/{id}/extend (an admin
/// moves an unfinished job's deadline, once), POST /v1/jobs/{id}/retry (an
/// admin runs a failed job's failed steps again) and GET /v1/jobs, the admin's
/// list of jobs across the cluster, newest first.
///
/// Jobs live in the stores of the services that hold them (the registry's job
/// holders), spread over shards and nodes. One page asks one shard per node
/// that hosts a holder (each answers from its node's store: on SQLite the jobs
/// of that node, on a shared store those of the shards it holds) for `limit`+1
/// jobs below the cursor, merges the answers by job id (time-ordered ids:
/// descending = newest first), drops duplicates and keeps `limit`. A job id is
/// the cursor: the next page starts below the last id shown, so a page never
/// repeats or skips a job that existed when the first page was read.

#include "runtime/gateway/caller.hpp"
#include "runtime/gateway/http_server.hpp"
#include "runtime/router/router.hpp"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace custodian {

/// The query of GET /v1/jobs, checked: "" or an error sentence.
struct job_list_query {
  std::string kind, state, after;
  uint32_t limit = 100;
};
std::string parse_job_list_query(const http::request& req, job_list_query& out);

/// Sends `env` to one shard per node hosting each of `services` (each answers
/// from its node's store); `done` gets every OK answer and the services some of
/// whose shards did not answer (down, or no route) — possibly none at all.
void ask_every_node(std::shared_ptr<caller> c, std::shared_ptr<router> rt,
                    const std::vector<std::string>& services, const v1::Envelope& env,
                    std::function<void(std::vector<v1::Reply>, std::vector<std::string>)> done);

/// Sends `env` (about job `job_id`) to each job-holding service in turn, from
/// the `i`-th, until one does not answer NOT_FOUND; `k` gets that answer.
void ask_job_holders(std::shared_ptr<caller> c,
                     std::shared_ptr<const std::vector<std::string>> holders, size_t i,
                     std::string job_id, v1::Envelope env, std::function<void(v1::Reply)> k);

/// Also GET /v1/jobs/{id}/certificate and GET /v1/keys (the certificate keys
/// of `erase_coordinator`'s nodes).
void install_job_routes(http::server& s, std::shared_ptr<caller> c, std::shared_ptr<router> rt,
                        std::vector<std::string> holders, std::string erase_coordinator);

}  // namespace custodian
