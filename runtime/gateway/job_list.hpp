#pragma once
/// GET /v1/jobs: the admin's list of jobs across the cluster, newest first.
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

void install_job_list(http::server& s, std::shared_ptr<caller> c, std::shared_ptr<router> rt,
                      std::vector<std::string> holders);

} // namespace custodian
