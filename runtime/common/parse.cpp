#include "runtime/common/parse.hpp"

#include <algorithm>
#include <cctype>

namespace custodian {

bool split_host_port(const std::string& s, std::string& host, uint16_t& port) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size())
    return false;
  auto p = s.substr(colon + 1);
  if (p.size() > 5 || !std::all_of(p.begin(), p.end(), ::isdigit))
    return false;
  auto n = std::stoul(p);
  if (n > 65535)
    return false;
  host = s.substr(0, colon);
  port = static_cast<uint16_t>(n);
  return true;
}

int64_t parse_duration_ms(const std::string& s) {
  size_t digits = 0;
  while (digits < s.size() && digits < 6 && std::isdigit(static_cast<unsigned char>(s[digits])))
    ++digits;
  if (digits == 0)
    return -1;
  auto n = std::stoll(s.substr(0, digits));
  auto unit = s.substr(digits);
  if (unit == "d")
    return n * 86400000;
  if (unit == "h")
    return n * 3600000;
  if (unit == "min")
    return n * 60000;
  if (unit == "s")
    return n * 1000;
  return -1;
}

}  // namespace custodian
