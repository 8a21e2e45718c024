#include "twinrt/twins/predicate.hpp"

#include <cctype>
#include <cmath>
#include <cstdlib>

namespace twinrt::twins {

std::optional<double> value_of(const twin_state& st, std::string_view name) {
  if (auto c = st.channels.find(name); c != st.channels.end())
    return c->second.value;
  if (auto d = st.analytics.derived.find(name); d != st.analytics.derived.end())
    return d->second;
  if (name == "score")
    return st.score;
  if (name == "health")
    return static_cast<double>(st.status);
  if (name == "energy_kwh" && st.own.sums.count("energy_kwh") == 0)
    return st.energy_kwh;
  auto s = st.own.sums.find(std::string(name));
  if (s != st.own.sums.end())
    return s->second;
  // A rollup sum that is zero is not stored; stock and counts read as 0.
  if (name.rfind("stock/", 0) == 0 || name.rfind("count/", 0) == 0)
    return 0.0;
  return std::nullopt;
}

namespace {

bool name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '/' || c == '-'
         || c == '.';
}

} // namespace

std::variant<predicate, std::string> predicate::parse(std::string_view text) {
  predicate p;
  size_t i = 0;
  auto fail = [&](const std::string& why) {
    return "bad predicate '" + std::string(text) + "': " + why;
  };
  auto skip = [&] {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i])))
      ++i;
  };
  skip();
  if (i == text.size())
    return p;
  for (;;) {
    skip();
    size_t start = i;
    while (i < text.size() && name_char(text[i]))
      ++i;
    if (i == start)
      return fail("expected a channel or rollup name at position " + std::to_string(start + 1));
    clause c;
    c.name = std::string(text.substr(start, i - start));
    skip();
    auto rest = text.substr(i);
    auto take = [&](std::string_view sym, op o) {
      if (rest.substr(0, sym.size()) == sym) {
        c.cmp = o;
        i += sym.size();
        return true;
      }
      return false;
    };
    if (!(take(">=", op::ge) || take("<=", op::le) || take("==", op::eq) || take("!=", op::ne)
          || take(">", op::gt) || take("<", op::lt) || take("=", op::eq)))
      return fail("expected one of > >= < <= == != after '" + c.name + "'");
    skip();
    std::string number;
    while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i])))
      number.push_back(text[i++]);
    char* end = nullptr;
    c.value = std::strtod(number.c_str(), &end);
    if (number.empty() || end != number.c_str() + number.size() || !std::isfinite(c.value))
      return fail("expected a number after '" + c.name + "', got '" + number + "'");
    p.clauses_.push_back(std::move(c));
    skip();
    if (i == text.size())
      return p;
    auto word = text.substr(i, 3);
    if (word == "and" || word == "AND") {
      i += 3;
    } else if (text.substr(i, 2) == "&&") {
      i += 2;
    } else {
      return fail("expected 'and' at position " + std::to_string(i + 1));
    }
  }
}

bool predicate::matches(const twin_state& st) const {
  for (auto& c : clauses_) {
    auto v = value_of(st, c.name);
    if (!v)
      return false;
    bool ok = false;
    switch (c.cmp) {
      case op::gt:
        ok = *v > c.value;
        break;
      case op::ge:
        ok = *v >= c.value;
        break;
      case op::lt:
        ok = *v < c.value;
        break;
      case op::le:
        ok = *v <= c.value;
        break;
      case op::eq:
        ok = *v == c.value;
        break;
      case op::ne:
        ok = *v != c.value;
        break;
    }
    if (!ok)
      return false;
  }
  return true;
}

} // namespace twinrt::twins
