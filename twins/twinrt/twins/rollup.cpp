#include "twinrt/twins/rollup.hpp"

#include <algorithm>

namespace twinrt::twins {

const char* to_string(health_status s) {
  switch (s) {
    case health_status::ok:
      return "ok";
    case health_status::warning:
      return "warning";
    case health_status::alarm:
      return "alarm";
    case health_status::stale:
      return "stale";
  }
  return "unknown";
}

double status_score(health_status s) {
  switch (s) {
    case health_status::ok:
      return 100;
    case health_status::warning:
      return 50;
    case health_status::alarm:
      return 0;
    case health_status::stale:
      return 25;
  }
  return 0;
}

bool contribution::operator==(const contribution& o) const {
  return sums == o.sums && counts == o.counts && score_sum == o.score_sum
         && score_count == o.score_count && worst_id == o.worst_id
         && worst_status == o.worst_status && latest_ts_ms == o.latest_ts_ms;
}

void fold_into(contribution& acc, const contribution& child) {
  for (auto& [key, value] : child.sums) {
    auto& slot = acc.sums[key];
    slot += value;
    if (slot == 0)
      acc.sums.erase(key);
  }
  for (size_t i = 0; i < acc.counts.size(); ++i)
    acc.counts[i] += child.counts[i];
  acc.score_sum += child.score_sum;
  acc.score_count += child.score_count;
  acc.latest_ts_ms = std::max(acc.latest_ts_ms, child.latest_ts_ms);
  if (!child.worst_id.empty()) {
    if (acc.worst_id.empty() || child.worst_status > acc.worst_status
        || (child.worst_status == acc.worst_status && child.worst_id < acc.worst_id)) {
      acc.worst_id = child.worst_id;
      acc.worst_status = child.worst_status;
    }
  }
}

} // namespace twinrt::twins
