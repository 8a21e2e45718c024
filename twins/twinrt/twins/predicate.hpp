#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "twinrt/twins/twin_state.hpp"

namespace twinrt::twins {

/// The value called `name` on a twin: a channel's latest value, `score`,
/// `health` (0 ok .. 3 stale), `energy_kwh`, `energy_today_kwh`, or a rollup
/// sum (`power_kw`, `stock/SKU-1`, `count/on_road`), or a derived value of
/// its analytics (`rul_hours`, `throughput_deviation_pct` ...). nullopt when
/// the twin has no such value.
std::optional<double> value_of(const twin_state& st, std::string_view name);

/// A filter such as `vibration_mm_s > 4.5 and score < 80`: clauses
/// NAME OP NUMBER (OP one of > >= < <= == !=) joined by `and`. A twin matches
/// when it has every named value and each comparison holds.
class predicate {
public:
  enum class op { gt, ge, lt, le, eq, ne };
  struct clause {
    std::string name;
    op cmp = op::gt;
    double value = 0;
  };

  /// Parses `text` (empty matches everything). A refusal names the text
  /// and the reason: "bad predicate 'x >': expected a number after '>'".
  static std::variant<predicate, std::string> parse(std::string_view text);

  bool matches(const twin_state& st) const;
  const std::vector<clause>& clauses() const { return clauses_; }

private:
  std::vector<clause> clauses_;
};

} // namespace twinrt::twins
