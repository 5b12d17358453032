#include "bench/http_load.hpp"

#include <sodium.h>
#include <sys/wait.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace custodian::bench {

namespace fs = std::filesystem;

namespace {

/// One CSV record (RFC 4180 quoting, as Go's encoding/csv writes it).
std::vector<std::string> csv_fields(const std::string& line) {
  std::vector<std::string> out(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"')
        out.back().push_back('"'), ++i;
      else if (c == '"')
        quoted = false;
      else
        out.back().push_back(c);
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.emplace_back();
    } else {
      out.back().push_back(c);
    }
  }
  return out;
}

std::string base64_decode(const std::string& in) {
  std::string out(in.size(), '\0');
  size_t len = 0;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), in.data(),
                        in.size(), nullptr, &len, nullptr, sodium_base64_VARIANT_ORIGINAL)
      != 0)
    return "";
  out.resize(len);
  return out;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s)
    out += (c == '"' || c == '\\') ? std::string("\\") + c : std::string(1, c);
  return out + "\"";
}

void run(const std::string& cmd) {
  int rc = std::system(cmd.c_str());
  if (rc != 0)
    throw std::runtime_error("command failed (" + std::to_string(WEXITSTATUS(rc)) + "): " + cmd);
}

}  // namespace

std::string vegeta_binary() {
  if (auto* env = std::getenv("CUSTODIAN_VEGETA"))
    return env;
  auto p = fs::path(CUSTODIAN_SOURCE_DIR) / ".tools/bin/vegeta";
  return fs::exists(p) ? p.string() : "";
}

std::vector<http_hit> attack(const std::string& work_dir, const std::vector<http_target>& targets,
                             const attack_options& opt) {
  auto bin = vegeta_binary();
  if (bin.empty())
    throw std::runtime_error("vegeta not found: run scripts/setup.sh --bench");
  auto dir = fs::path(work_dir);
  fs::create_directories(dir);
  auto tfile = (dir / "targets.jsonl").string();
  auto bin_out = (dir / "results.bin").string();
  auto csv = (dir / "results.csv").string();
  {
    std::ofstream t(tfile);
    for (auto& x : targets) {
      t << "{\"method\":" << json_string(x.method) << ",\"url\":" << json_string(x.url);
      t << ",\"header\":{\"Content-Type\":[\"application/json\"]";
      if (!x.token.empty())
        t << ",\"Authorization\":[" << json_string("Bearer " + x.token) << "]";
      t << "}";
      if (!x.body.empty()) {
        std::string b64(sodium_base64_encoded_len(x.body.size(), sodium_base64_VARIANT_ORIGINAL),
                        '\0');
        sodium_bin2base64(b64.data(), b64.size(),
                          reinterpret_cast<const unsigned char*>(x.body.data()), x.body.size(),
                          sodium_base64_VARIANT_ORIGINAL);
        b64.resize(std::strlen(b64.c_str()));
        t << ",\"body\":" << json_string(b64);
      }
      t << "}\n";
    }
  }
  std::ostringstream cmd;
  cmd << bin << " attack -format=json -targets=" << tfile << (opt.lazy ? " -lazy" : "")
      << " -rate=" << (opt.rate > 0 ? std::to_string(static_cast<long>(opt.rate)) + "/1s" : "0")
      << " -duration=" << opt.duration.count() << "ms"
      << " -connections=" << opt.connections << " -max-connections=" << opt.connections
      << " -workers=" << opt.workers << " -max-workers=" << opt.workers
      << " -timeout=30s -output=" << bin_out;
  run(cmd.str());
  run(bin + " encode --to csv --output=" + csv + " " + bin_out);
  std::vector<http_hit> hits;
  std::ifstream in(csv);
  for (std::string line; std::getline(in, line);) {
    auto f = csv_fields(line);
    if (f.size() < 11)
      continue;
    if (f[1] == "0" && f[5] == "no targets to attack")
      continue;  // a worker that found the (lazy) list at its end
    http_hit h;
    h.sent = std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
        std::chrono::nanoseconds(std::stoll(f[0]))));
    h.code = std::stoi(f[1]);
    h.latency_ms = std::stod(f[2]) / 1e6;
    h.error = f[5];
    h.body = base64_decode(f[6]);
    h.url = f[10];
    hits.push_back(std::move(h));
  }
  return hits;
}

}  // namespace custodian::bench
