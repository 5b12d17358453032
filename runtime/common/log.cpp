#include "runtime/common/log.hpp"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <chrono>
#include <cstdio>

#include <mutex>

namespace custodian::log {

namespace {

std::mutex mtx;
std::vector<spdlog::sink_ptr> sinks;
spdlog::level::level_enum level = spdlog::level::info;
std::string pattern = "%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %v";

/// %* : the message, escaped for a JSON string.
class json_message final : public spdlog::custom_flag_formatter {
public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    for (char ch : msg.payload) {
      auto c = static_cast<unsigned char>(ch);
      if (c == '"' || c == '\\') {
        dest.push_back('\\');
        dest.push_back(ch);
      } else if (c < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        dest.append(buf, buf + 6);
      } else {
        dest.push_back(ch);
      }
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<json_message>();
  }
};

}  // namespace

std::string setup(const std::string& lvl, const std::string& format, const std::string& file) {
  std::lock_guard<std::mutex> guard{mtx};
  auto parsed = spdlog::level::from_str(lvl);
  if (parsed == spdlog::level::off && lvl != "off")
    return "log.level must be one of trace, debug, info, warning, error, critical, off; got \""
           + lvl + "\"";
  if (format == "text")
    pattern = "%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %v";
  else if (format == "json")
    pattern = R"({"ts":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","logger":"%n","msg":"%*"})";
  else
    return "log.format must be \"text\" or \"json\"; got \"" + format + "\"";
  level = parsed;
  sinks.clear();
  try {
    if (file.empty())
      sinks.push_back(std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
    else
      sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(file));
  } catch (const spdlog::spdlog_ex& e) {
    return std::string("cannot open log file: ") + e.what();
  }
  spdlog::drop_all();
  spdlog::flush_every(std::chrono::seconds(1));
  return "";
}

std::shared_ptr<spdlog::logger> get(const std::string& area) {
  std::lock_guard<std::mutex> guard{mtx};
  if (auto l = spdlog::get(area))
    return l;
  if (sinks.empty())
    sinks.push_back(std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  auto l = std::make_shared<spdlog::logger>(area, sinks.begin(), sinks.end());
  l->set_level(level);
  auto f = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  f->add_flag<json_message>('*');
  f->set_pattern(pattern);
  l->set_formatter(std::move(f));
  // A file is written through a buffer: warnings and worse reach it at once,
  // info lines within a second (flush_every in setup). A flush per info line
  // was a write() per finished job, 2-3 % of an erasure's CPU. stderr is
  // unbuffered: every line is written at once whatever this says.
  l->flush_on(spdlog::level::warn);
  spdlog::register_logger(l);
  return l;
}

}  // namespace custodian::log
