#pragma once
/// The pages' files, compiled into the node by cmake/embed_files.cmake: the
/// ops page (ui/, served under /ui/) and the privacy page (privacy/).

#include <string_view>
#include <vector>

namespace custodian {

struct ui_asset {
  const char* name;  ///< file name: "index.html", "app.js", ...
  const char* content_type;
  std::string_view body;
};

const std::vector<ui_asset>& ui_assets();
/// The privacy page's files (privacy/ of the project), served under /privacy/.
const std::vector<ui_asset>& privacy_assets();

}  // namespace custodian
