#pragma once
/// The ops page's files (ui/ of the project), compiled into the node by
/// cmake/embed_files.cmake and served under /ui/.

#include <string_view>
#include <vector>

namespace custodian {

struct ui_asset {
  const char* name;          ///< file name: "index.html", "app.js", ...
  const char* content_type;
  std::string_view body;
};

const std::vector<ui_asset>& ui_assets();

} // namespace custodian
