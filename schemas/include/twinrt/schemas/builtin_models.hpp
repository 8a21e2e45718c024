#pragma once

#include <string>
#include <vector>

namespace twinrt::schemas {

/// A model file compiled into the binary from schemas/models/.
struct builtin_model {
  std::string file_name;
  std::string text;
};

/// The models shipped with twinrt, in file-name order.
const std::vector<builtin_model>& builtin_models();

} // namespace twinrt::schemas
