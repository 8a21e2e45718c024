#include "twinrt/runtime/query.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <deque>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string_view>
#include <unordered_map>

#include "twinrt/twins/predicate.hpp"

namespace twinrt::runtime {

namespace {

constexpr uint32_t none = std::numeric_limits<uint32_t>::max();

// Twins of one kind per chunk: a query locks one chunk at a time, an update
// only its twin's chunk, and a column costs memory only in the chunks
// where some twin has the value.
constexpr size_t chunk_slots = 512;

// A value a twin does not have: a NaN with a payload that no arithmetic
// makes, so that a NaN a twin holds stays a value.
constexpr uint64_t absent_bits = 0x7ffc'0000'0000'a5e0ULL;

double absent() {
  double d;
  std::memcpy(&d, &absent_bits, sizeof d);
  return d;
}

bool is_absent(double d) {
  uint64_t bits;
  std::memcpy(&bits, &d, sizeof bits);
  return bits == absent_bits;
}

struct column {
  uint32_t name = 0;
  std::unique_ptr<double[]> values; // chunk_slots of them, absent() where a twin lacks it
};

struct chunk {
  chunk() {
    std::fill(std::begin(row), std::end(row), none);
    std::fill(std::begin(health), std::end(health), uint8_t{0});
    std::fill(std::begin(version), std::end(version), uint64_t{0});
  }

  // The column of `name`, or nullptr when no twin of this chunk has it.
  const double* find(uint32_t name) const {
    auto i = std::lower_bound(columns.begin(), columns.end(), name,
                              [](const column& c, uint32_t n) { return c.name < n; });
    return i != columns.end() && i->name == name ? i->values.get() : nullptr;
  }

  mutable std::mutex mtx; // guards the values below against updates; structure: see impl
  uint32_t row[chunk_slots];   // the twin in each slot; none: free
  uint8_t health[chunk_slots]; // twins::health_status
  uint64_t version[chunk_slots];
  std::vector<column> columns; // by name id, ascending
};

struct kind_table {
  std::string name;
  std::vector<std::unique_ptr<chunk>> chunks;
  std::vector<uint32_t> free_slots;
  uint32_t used = 0; // slots handed out so far, free ones included
};

struct twin_row {
  std::string id;
  uint32_t number = 0; // 0: a free row
  uint32_t parent = none;
  uint32_t kind = none;
  uint32_t slot = 0;
};

// Where a page ended: the last twin's sort value (absent when it has none)
// and id. The order: by value (ascending or descending; twins without the
// value last), ties and the plain order by id.
struct page_position {
  bool has_value = false;
  double value = 0;
  std::string id;

  // "i:ID" in id order; "v:VALUE:ID" or "n:ID" (no value) when sorted by a value.
  std::string to_token(bool by_value) const {
    if (!by_value)
      return "i:" + id;
    if (!has_value)
      return "n:" + id;
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", value);
    return std::string("v:") + buf + ":" + id;
  }

  static std::optional<page_position> parse(const std::string& token, bool by_value) {
    if (token.size() < 3 || token[1] != ':')
      return std::nullopt;
    auto rest = token.substr(2);
    switch (token[0]) {
      case 'i':
        if (by_value)
          return std::nullopt;
        return page_position{false, 0, rest};
      case 'n':
        if (!by_value)
          return std::nullopt;
        return page_position{false, 0, rest};
      case 'v': {
        auto colon = rest.find(':');
        if (!by_value || colon == std::string::npos)
          return std::nullopt;
        auto number = rest.substr(0, colon);
        char* end = nullptr;
        double v = std::strtod(number.c_str(), &end);
        if (number.empty() || end != number.c_str() + number.size() || !std::isfinite(v))
          return std::nullopt;
        return page_position{true, v, rest.substr(colon + 1)};
      }
      default:
        return std::nullopt;
    }
  }
};

// A twin that matched, as the page heap keeps it.
struct candidate {
  bool has_value;
  double value;
  uint32_t row;
  uint64_t version;
};

// A name value_of() reads as 0 when a twin does not hold it.
bool reads_as_zero(std::string_view name) {
  return name.rfind("stock/", 0) == 0 || name.rfind("count/", 0) == 0;
}

bool holds(twins::predicate::op op, double v, double x) {
  using op_t = twins::predicate::op;
  switch (op) {
    case op_t::gt:
      return v > x;
    case op_t::ge:
      return v >= x;
    case op_t::lt:
      return v < x;
    case op_t::le:
      return v <= x;
    case op_t::eq:
      return v == x;
    case op_t::ne:
      return v != x;
  }
  return false;
}

} // namespace

struct query_index::impl {
  // Exclusive for the structure (rows, ids, kinds, chunks, slots): insert,
  // erase, reparent, load. Shared for queries and updates, which lock each
  // chunk they touch.
  mutable std::shared_mutex mtx;
  std::deque<twin_row> rows; // a deque: rows never move, so ids can be keys by view
  std::vector<uint32_t> free_rows;
  std::unordered_map<std::string_view, uint32_t> by_id;
  std::vector<std::unique_ptr<kind_table>> kinds;
  std::unordered_map<std::string, uint32_t> kind_ids;

  mutable std::shared_mutex names_mtx; // names are added by updates, under a shared mtx
  std::unordered_map<std::string, uint32_t> name_ids;

  uint32_t find(std::string_view id) const {
    auto i = by_id.find(id);
    return i == by_id.end() ? none : i->second;
  }

  // With mtx exclusive: a row and a slot for `m`, its parent resolved when
  // present, its values empty.
  uint32_t add(const twin_meta& m) {
    uint32_t r;
    if (!free_rows.empty()) {
      r = free_rows.back();
      free_rows.pop_back();
    } else {
      r = static_cast<uint32_t>(rows.size());
      rows.emplace_back();
    }
    auto& row = rows[r];
    row.id = m.id;
    row.number = m.number;
    row.parent = m.parent.empty() ? none : find(m.parent);
    auto k = kind_ids.find(m.kind);
    if (k == kind_ids.end()) {
      k = kind_ids.emplace(m.kind, static_cast<uint32_t>(kinds.size())).first;
      kinds.push_back(std::make_unique<kind_table>());
      kinds.back()->name = m.kind;
    }
    row.kind = k->second;
    auto& kt = *kinds[row.kind];
    if (!kt.free_slots.empty()) {
      row.slot = kt.free_slots.back();
      kt.free_slots.pop_back();
    } else {
      row.slot = kt.used++;
      if (row.slot / chunk_slots >= kt.chunks.size())
        kt.chunks.push_back(std::make_unique<chunk>());
    }
    auto& c = *kt.chunks[row.slot / chunk_slots];
    auto i = row.slot % chunk_slots;
    c.row[i] = r;
    c.health[i] = 0;
    c.version[i] = 0;
    for (auto& col : c.columns)
      col.values[i] = absent();
    by_id.emplace(std::string_view(row.id), r);
    return r;
  }

  // With mtx exclusive.
  void remove(uint32_t r) {
    auto& row = rows[r];
    by_id.erase(std::string_view(row.id));
    auto& kt = *kinds[row.kind];
    kt.chunks[row.slot / chunk_slots]->row[row.slot % chunk_slots] = none;
    kt.free_slots.push_back(row.slot);
    row = twin_row{};
    free_rows.push_back(r);
  }

  // With mtx held (shared or exclusive): the twin's health, version and
  // values become those of `st`.
  void write(uint32_t r, const twins::twin_state& st) {
    thread_local std::vector<std::pair<uint32_t, double>> values;
    thread_local std::vector<std::pair<const std::string*, double>> unnamed;
    values.clear();
    unnamed.clear();
    {
      std::shared_lock<std::shared_mutex> g(names_mtx);
      twins::visit_values(st, [&](const std::string& name, double v) {
        if (auto i = name_ids.find(name); i != name_ids.end())
          values.emplace_back(i->second, v);
        else
          unnamed.emplace_back(&name, v);
      });
    }
    if (!unnamed.empty()) {
      std::unique_lock<std::shared_mutex> g(names_mtx);
      for (auto& [name, v] : unnamed) {
        auto i = name_ids.emplace(*name, static_cast<uint32_t>(name_ids.size())).first;
        values.emplace_back(i->second, v);
      }
    }
    std::sort(values.begin(), values.end(),
              [](auto& a, auto& b) { return a.first < b.first; });
    auto& row = rows[r];
    auto& c = *kinds[row.kind]->chunks[row.slot / chunk_slots];
    auto i = row.slot % chunk_slots;
    std::lock_guard<std::mutex> g(c.mtx);
    c.health[i] = static_cast<uint8_t>(st.status);
    c.version[i] = st.version;
    // Both sorted by name: a merge sets what the twin has, clears what it
    // no longer has, and notes columns this chunk lacks so far.
    std::vector<column> added;
    size_t a = 0, b = 0;
    while (a < c.columns.size() || b < values.size()) {
      if (b == values.size() || (a < c.columns.size() && c.columns[a].name < values[b].first)) {
        c.columns[a++].values[i] = absent();
      } else if (a == c.columns.size() || values[b].first < c.columns[a].name) {
        column col{values[b].first, std::make_unique<double[]>(chunk_slots)};
        std::fill(col.values.get(), col.values.get() + chunk_slots, absent());
        col.values[i] = values[b++].second;
        added.push_back(std::move(col));
      } else {
        c.columns[a++].values[i] = values[b++].second;
      }
    }
    if (!added.empty()) {
      for (auto& col : added)
        c.columns.push_back(std::move(col));
      std::sort(c.columns.begin(), c.columns.end(),
                [](const column& x, const column& y) { return x.name < y.name; });
    }
  }
};

query_index::query_index() : impl_(std::make_unique<impl>()) {
}

query_index::~query_index() = default;

void query_index::load(const std::vector<twin_meta>& metas) {
  std::unique_lock<std::shared_mutex> g(impl_->mtx);
  std::vector<uint32_t> added;
  added.reserve(metas.size());
  for (auto& m : metas) {
    if (auto old = impl_->find(m.id); old != none)
      impl_->remove(old);
    added.push_back(impl_->add(m));
  }
  // Parents may come after their children.
  for (size_t k = 0; k < metas.size(); ++k)
    impl_->rows[added[k]].parent = metas[k].parent.empty() ? none : impl_->find(metas[k].parent);
}

void query_index::insert(const twin_meta& m, const twins::twin_state& st) {
  std::unique_lock<std::shared_mutex> g(impl_->mtx);
  if (auto old = impl_->find(m.id); old != none)
    impl_->remove(old);
  impl_->write(impl_->add(m), st);
}

void query_index::erase(const std::string& id) {
  std::unique_lock<std::shared_mutex> g(impl_->mtx);
  if (auto r = impl_->find(id); r != none)
    impl_->remove(r);
}

void query_index::reparent(const std::string& id, const std::string& new_parent) {
  std::unique_lock<std::shared_mutex> g(impl_->mtx);
  if (auto r = impl_->find(id); r != none)
    impl_->rows[r].parent = new_parent.empty() ? none : impl_->find(new_parent);
}

void query_index::update(const std::string& id, uint32_t number, const twins::twin_state& st) {
  std::shared_lock<std::shared_mutex> g(impl_->mtx);
  auto r = impl_->find(id);
  if (r == none || impl_->rows[r].number != number)
    return;
  impl_->write(r, st);
}

size_t query_index::size() const {
  std::shared_lock<std::shared_mutex> g(impl_->mtx);
  return impl_->by_id.size();
}

caf::expected<query_page> query_index::run(const query_request& q) const {
  auto limit = q.limit == 0 ? query_request::default_page : q.limit;
  if (limit > query_request::max_page)
    return make_error(errc::bad_request, "page size " + std::to_string(limit)
                                           + " is over the limit of "
                                           + std::to_string(query_request::max_page));
  auto parsed = twins::predicate::parse(q.where);
  if (auto why = std::get_if<std::string>(&parsed))
    return make_error(errc::bad_request, *why);
  const auto& clauses = std::get<twins::predicate>(parsed).clauses();
  auto sort_by = q.sort_by == "id" ? std::string() : q.sort_by;
  bool by_value = !sort_by.empty();
  bool descending = q.descending;
  std::optional<page_position> after;
  if (!q.page_token.empty()) {
    after = page_position::parse(q.page_token, by_value);
    if (!after)
      return make_error(errc::bad_request, "bad page token '" + q.page_token + "'");
  }
  uint8_t health_mask = q.health.empty() ? 0xff : 0;
  for (auto h : q.health)
    health_mask |= static_cast<uint8_t>(1u << static_cast<unsigned>(h));

  query_page page;
  auto& x = *impl_;
  std::shared_lock<std::shared_mutex> g(x.mtx);

  // What to scan: the kind's chunks (every kind's when none is asked), and
  // the twins below `root` when a subtree is asked.
  std::vector<const kind_table*> kinds;
  if (q.kind.empty()) {
    for (auto& k : x.kinds)
      kinds.push_back(k.get());
  } else if (auto k = x.kind_ids.find(q.kind); k != x.kind_ids.end()) {
    kinds.push_back(x.kinds[k->second].get());
  }
  uint32_t root = none;
  if (!q.subtree.empty()) {
    root = x.find(q.subtree);
    if (root == none)
      return page;
  }
  // Names as interned ids; a name no twin ever had is none.
  struct term {
    uint32_t name;
    bool zero_default; // read as 0 where absent
    twins::predicate::op op;
    double value;
  };
  std::vector<term> terms;
  term sort_term{none, false, twins::predicate::op::eq, 0};
  {
    std::shared_lock<std::shared_mutex> n(x.names_mtx);
    auto id_of = [&](const std::string& name) {
      auto i = x.name_ids.find(name);
      return i == x.name_ids.end() ? none : i->second;
    };
    for (auto& c : clauses) {
      terms.push_back({id_of(c.name), reads_as_zero(c.name), c.cmp, c.value});
      if (terms.back().name == none && !terms.back().zero_default)
        return page; // no twin has it: none matches
    }
    if (by_value)
      sort_term = {id_of(sort_by), reads_as_zero(sort_by), twins::predicate::op::eq, 0};
  }

  // Membership in root's subtree, remembered for every twin passed on the
  // way up (1 inside, 0 outside, -1 not known yet).
  std::vector<int8_t> inside;
  std::vector<uint32_t> path;
  if (root != none) {
    inside.assign(x.rows.size(), -1);
    inside[root] = 1;
  }
  auto in_subtree = [&](uint32_t r) {
    if (root == none)
      return true;
    path.clear();
    int8_t answer = 0;
    // Bounded by the number of rows, should the tree ever have a cycle.
    for (size_t steps = 0; r != none && steps <= x.rows.size(); ++steps) {
      if (inside[r] >= 0) {
        answer = inside[r];
        break;
      }
      path.push_back(r);
      r = x.rows[r].parent;
    }
    for (auto p : path)
      inside[p] = answer;
    return answer == 1;
  };

  auto id_of_row = [&](uint32_t r) -> const std::string& { return x.rows[r].id; };
  auto before = [&](const candidate& a, const candidate& b) {
    if (by_value) {
      if (a.has_value != b.has_value)
        return a.has_value;
      if (a.has_value && a.value != b.value)
        return descending ? a.value > b.value : a.value < b.value;
      return id_of_row(a.row) < id_of_row(b.row);
    }
    return descending ? id_of_row(a.row) > id_of_row(b.row) : id_of_row(a.row) < id_of_row(b.row);
  };
  // True when `c` comes after the previous page's last twin.
  auto past = [&](const candidate& c) {
    if (!after)
      return true;
    if (by_value) {
      if (after->has_value != c.has_value)
        return after->has_value;
      if (c.has_value && after->value != c.value)
        return descending ? after->value > c.value : after->value < c.value;
      return after->id < id_of_row(c.row);
    }
    return descending ? after->id > id_of_row(c.row) : after->id < id_of_row(c.row);
  };

  // The page plus one (which says whether there is a next page), in a heap
  // whose top is the last of them in the order.
  std::vector<candidate> heap;
  heap.reserve(limit + 1);
  std::vector<const double*> columns(terms.size());
  for (auto* kt : kinds) {
    for (auto& cp : kt->chunks) {
      auto& c = *cp;
      std::lock_guard<std::mutex> lock(c.mtx);
      for (size_t t = 0; t < terms.size(); ++t)
        columns[t] = terms[t].name == none ? nullptr : c.find(terms[t].name);
      const double* sort_column = sort_term.name == none ? nullptr : c.find(sort_term.name);
      for (size_t i = 0; i < chunk_slots; ++i) {
        auto r = c.row[i];
        if (r == none || !(health_mask & (1u << c.health[i])))
          continue;
        bool match = true;
        for (size_t t = 0; t < terms.size() && match; ++t) {
          double v = columns[t] ? columns[t][i] : absent();
          if (is_absent(v)) {
            if (!terms[t].zero_default) {
              match = false;
              break;
            }
            v = 0;
          }
          match = holds(terms[t].op, v, terms[t].value);
        }
        if (!match || !in_subtree(r))
          continue;
        ++page.total;
        candidate cand{false, 0, r, c.version[i]};
        if (by_value) {
          double v = sort_column ? sort_column[i] : absent();
          if (!is_absent(v))
            cand.has_value = true, cand.value = v;
          else if (sort_term.zero_default)
            cand.has_value = true, cand.value = 0;
        }
        if (!past(cand))
          continue;
        if (heap.size() <= limit) {
          heap.push_back(cand);
          std::push_heap(heap.begin(), heap.end(), before);
        } else if (before(cand, heap.front())) {
          std::pop_heap(heap.begin(), heap.end(), before);
          heap.back() = cand;
          std::push_heap(heap.begin(), heap.end(), before);
        }
      }
    }
  }
  std::sort_heap(heap.begin(), heap.end(), before);
  bool more = heap.size() > limit;
  if (more)
    heap.pop_back();
  page.hits.reserve(heap.size());
  for (auto& c : heap)
    page.hits.push_back({x.rows[c.row].id, x.rows[c.row].number, c.version});
  if (more && !heap.empty()) {
    auto& last = heap.back();
    page.next_page_token =
      page_position{last.has_value, last.value, x.rows[last.row].id}.to_token(by_value);
  }
  return page;
}

size_t query_index::memory_bytes() const {
  std::shared_lock<std::shared_mutex> g(impl_->mtx);
  auto& x = *impl_;
  auto string_heap = [](const std::string& s) {
    return s.capacity() > 15 ? s.capacity() + 1 : 0; // beyond the small-string buffer
  };
  // An unordered_map node: next pointer, the value, the cached hash.
  auto map_bytes = [](const auto& m, size_t value_size) {
    return m.size() * (sizeof(void*) + value_size + sizeof(size_t))
           + m.bucket_count() * sizeof(void*);
  };
  size_t bytes = sizeof(impl);
  bytes += x.rows.size() * sizeof(twin_row);
  for (auto& r : x.rows)
    bytes += string_heap(r.id);
  bytes += x.free_rows.capacity() * sizeof(uint32_t);
  bytes += map_bytes(x.by_id, sizeof(std::pair<const std::string_view, uint32_t>));
  for (auto& k : x.kinds) {
    bytes += sizeof(kind_table) + k->chunks.capacity() * sizeof(void*)
             + k->free_slots.capacity() * sizeof(uint32_t);
    for (auto& c : k->chunks)
      bytes += sizeof(chunk) + c->columns.capacity() * sizeof(column)
               + c->columns.size() * chunk_slots * sizeof(double);
  }
  bytes += map_bytes(x.kind_ids, sizeof(std::pair<const std::string, uint32_t>));
  std::shared_lock<std::shared_mutex> n(x.names_mtx);
  bytes += map_bytes(x.name_ids, sizeof(std::pair<const std::string, uint32_t>));
  for (auto& [name, id] : x.name_ids)
    bytes += string_heap(name);
  return bytes;
}

// -- history -----------------------------------------------------------------------

caf::expected<history_request> checked(history_request r) {
  if (r.to_ms == 0)
    r.to_ms = std::numeric_limits<int64_t>::max();
  if (r.limit == 0)
    r.limit = history_request::default_points;
  if (r.limit > history_request::max_points)
    return make_error(errc::bad_request, "limit " + std::to_string(r.limit)
                                           + " is over the limit of "
                                           + std::to_string(history_request::max_points)
                                           + " points");
  if (r.step_ms < 0 || r.from_ms > r.to_ms)
    return make_error(errc::bad_request, "bad time range: from " + std::to_string(r.from_ms)
                                           + " to " + std::to_string(r.to_ms) + " step "
                                           + std::to_string(r.step_ms));
  return r;
}

std::vector<history_step> downsample(const std::vector<history_point>& points, int64_t step_ms,
                                     size_t limit) {
  auto floor_div = [](int64_t a, int64_t b) { return a / b - (a % b < 0 ? 1 : 0); };
  std::vector<history_step> out;
  double sum = 0;
  auto close = [&] {
    if (!out.empty())
      out.back().mean = sum / out.back().count;
  };
  for (auto& p : points) {
    if (step_ms <= 0 || out.empty() || p.ts_ms >= out.back().ts_ms + step_ms) {
      if (out.size() == limit)
        break;
      close();
      auto start = step_ms <= 0 ? p.ts_ms : floor_div(p.ts_ms, step_ms) * step_ms;
      out.push_back({start, 0, p.value, p.value, p.value, 0, p.model_version});
      sum = 0;
    }
    auto& s = out.back();
    s.min = std::min(s.min, p.value);
    s.max = std::max(s.max, p.value);
    s.last = p.value;
    s.model_version = p.model_version;
    sum += p.value;
    ++s.count;
  }
  close();
  return out;
}

} // namespace twinrt::runtime
