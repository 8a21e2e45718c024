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

/// Calls `f(name, value)` once for every name value_of() answers from the
/// twin's own data, with the value value_of() gives it: each channel, each
/// derived value, `score`, `health`, `energy_kwh` and each rollup sum, a name
/// that several of them hold given once, as value_of() reads it. Names it does
/// not visit read as value_of() says: 0 for `stock/...` and `count/...`,
/// nothing otherwise. For indexes that keep what predicates name.
template <class F>
void visit_values(const twin_state& st, F&& f) {
  static const std::string score = "score", health = "health", energy = "energy_kwh";
  auto shadowed = [&](const std::string& name) { // an earlier source answers for it
    return st.channels.count(name) > 0 || st.analytics.derived.count(name) > 0;
  };
  for (auto& [name, c] : st.channels)
    f(name, c.value);
  for (auto& [name, v] : st.analytics.derived)
    if (st.channels.count(name) == 0)
      f(name, v);
  if (!shadowed(score))
    f(score, st.score);
  if (!shadowed(health))
    f(health, static_cast<double>(st.status));
  if (!shadowed(energy)) {
    auto s = st.own.sums.find(energy);
    f(energy, s == st.own.sums.end() ? st.energy_kwh : s->second);
  }
  for (auto& [name, v] : st.own.sums)
    if (name != score && name != health && name != energy && !shadowed(name))
      f(name, v);
}

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
