#include "twinrt/runtime/rpc_security.hpp"

#include <algorithm>
#include <charconv>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

namespace twinrt::runtime {

namespace {

constexpr const char* scheme = "pbkdf2-sha256";
constexpr size_t salt_bytes = 16;
constexpr size_t hash_bytes = 32;
constexpr char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64(const unsigned char* p, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = uint32_t{p[i]} << 16;
    if (i + 1 < n)
      v |= uint32_t{p[i + 1]} << 8;
    if (i + 2 < n)
      v |= p[i + 2];
    out += b64_chars[(v >> 18) & 63];
    out += b64_chars[(v >> 12) & 63];
    out += i + 1 < n ? b64_chars[(v >> 6) & 63] : '=';
    out += i + 2 < n ? b64_chars[v & 63] : '=';
  }
  return out;
}

// Strict: padded, standard alphabet, no spaces.
std::optional<std::vector<unsigned char>> unbase64(const std::string& s) {
  if (s.empty() || s.size() % 4 != 0)
    return std::nullopt;
  std::vector<unsigned char> out;
  for (size_t i = 0; i < s.size(); i += 4) {
    uint32_t v = 0;
    int pad = 0;
    for (size_t j = 0; j < 4; ++j) {
      char c = s[i + j];
      if (c == '=' && i + 4 == s.size() && j >= 2) {
        ++pad;
        v <<= 6;
        continue;
      }
      auto pos = std::string_view(b64_chars).find(c);
      if (pos == std::string_view::npos || pad > 0)
        return std::nullopt;
      v = (v << 6) | static_cast<uint32_t>(pos);
    }
    out.push_back(static_cast<unsigned char>(v >> 16));
    if (pad < 2)
      out.push_back(static_cast<unsigned char>(v >> 8));
    if (pad < 1)
      out.push_back(static_cast<unsigned char>(v));
  }
  return out;
}

struct parsed_hash {
  uint32_t iterations = 0;
  std::vector<unsigned char> salt, hash;
};

caf::expected<parsed_hash> parse(const std::string& h) {
  auto say = [](std::string why) -> caf::expected<parsed_hash> {
    return make_error(errc::bad_request, std::move(why));
  };
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    auto d = h.find('$', start);
    parts.push_back(h.substr(start, d == std::string::npos ? std::string::npos : d - start));
    if (d == std::string::npos)
      break;
    start = d + 1;
  }
  if (parts.size() != 4 || parts[0] != scheme)
    return say("expected pbkdf2-sha256$ITERATIONS$SALT$HASH (from twinrt token hash)");
  parsed_hash p;
  auto& it = parts[1];
  auto [end, ec] = std::from_chars(it.data(), it.data() + it.size(), p.iterations);
  if (it.empty() || ec != std::errc() || end != it.data() + it.size())
    return say("iterations '" + it + "' are not a whole number");
  if (p.iterations < min_hash_iterations || p.iterations > max_hash_iterations)
    return say("iterations " + it + " are not from " + std::to_string(min_hash_iterations)
               + " to " + std::to_string(max_hash_iterations));
  auto salt = unbase64(parts[2]);
  if (!salt || salt->size() < 8)
    return say("the salt is not base64 of at least 8 bytes");
  auto hash = unbase64(parts[3]);
  if (!hash || hash->size() != hash_bytes)
    return say("the hash is not base64 of 32 bytes");
  p.salt = std::move(*salt);
  p.hash = std::move(*hash);
  return p;
}

std::array<unsigned char, 32> sha256(const std::string& s) {
  std::array<unsigned char, 32> d{};
  unsigned int n = 0;
  EVP_Digest(s.data(), s.size(), d.data(), &n, EVP_sha256(), nullptr);
  return d;
}

bool derive(const std::string& secret, const parsed_hash& p, unsigned char* out, size_t n) {
  return PKCS5_PBKDF2_HMAC(secret.data(), static_cast<int>(secret.size()), p.salt.data(),
                           static_cast<int>(p.salt.size()), static_cast<int>(p.iterations),
                           EVP_sha256(), static_cast<int>(n), out)
         == 1;
}

} // namespace

std::string hash_secret(const std::string& secret, uint32_t iterations) {
  parsed_hash p;
  p.iterations = std::clamp(iterations, min_hash_iterations, max_hash_iterations);
  p.salt.resize(salt_bytes);
  if (RAND_bytes(p.salt.data(), static_cast<int>(p.salt.size())) != 1)
    return "";
  unsigned char out[hash_bytes];
  if (!derive(secret, p, out, sizeof out))
    return "";
  return std::string(scheme) + "$" + std::to_string(p.iterations) + "$"
         + base64(p.salt.data(), p.salt.size()) + "$" + base64(out, sizeof out);
}

caf::error check_secret_hash(const std::string& hash) {
  auto p = parse(hash);
  return p ? caf::error{} : std::move(p.error());
}

bool secret_matches_hash(const std::string& secret, const std::string& hash) {
  auto p = parse(hash);
  if (!p)
    return false;
  unsigned char out[hash_bytes];
  if (!derive(secret, *p, out, sizeof out))
    return false;
  return CRYPTO_memcmp(out, p->hash.data(), hash_bytes) == 0;
}

bool secrets_equal(const std::string& a, const std::string& b) {
  auto da = sha256(a);
  auto db = sha256(b);
  return CRYPTO_memcmp(da.data(), db.data(), da.size()) == 0;
}

// -- token_check -------------------------------------------------------------------

token_check::token_check(std::vector<entry> tokens)
  : tokens_(std::move(tokens)), proven_(tokens_.size()) {
}

std::optional<size_t> token_check::find_fast(const std::string& presented) {
  if (presented.empty())
    return std::nullopt;
  auto d = sha256(presented);
  std::lock_guard<std::mutex> g(mtx_);
  std::optional<size_t> found;
  // Every token is compared, whatever matches, so the time does not tell which.
  for (size_t i = 0; i < tokens_.size(); ++i) {
    bool match = false;
    if (tokens_[i].secret_hash.empty()) {
      auto s = sha256(tokens_[i].secret);
      match = CRYPTO_memcmp(s.data(), d.data(), d.size()) == 0;
    } else if (proven_[i]) {
      match = CRYPTO_memcmp(proven_[i]->data(), d.data(), d.size()) == 0;
    }
    if (match && !found)
      found = i;
  }
  return found;
}

bool token_check::has_unverified_hashes() {
  std::lock_guard<std::mutex> g(mtx_);
  for (size_t i = 0; i < tokens_.size(); ++i)
    if (!tokens_[i].secret_hash.empty() && !proven_[i])
      return true;
  return false;
}

std::optional<size_t> token_check::find(const std::string& presented) {
  if (auto fast = find_fast(presented))
    return fast;
  if (presented.empty())
    return std::nullopt;
  std::vector<size_t> unproven;
  {
    std::lock_guard<std::mutex> g(mtx_);
    for (size_t i = 0; i < tokens_.size(); ++i)
      if (!tokens_[i].secret_hash.empty() && !proven_[i])
        unproven.push_back(i);
  }
  for (auto i : unproven) {
    if (secret_matches_hash(presented, tokens_[i].secret_hash)) {
      std::lock_guard<std::mutex> g(mtx_);
      proven_[i] = sha256(presented);
      return i;
    }
  }
  return std::nullopt;
}

// -- login_throttle ----------------------------------------------------------------

login_throttle::clock::duration login_throttle::delay_after(uint32_t failures) const {
  if (failures < s_.free_failures)
    return clock::duration::zero();
  auto doublings = std::min<uint32_t>(failures - s_.free_failures, 30);
  auto d = std::chrono::duration_cast<clock::duration>(s_.base_delay) * (int64_t{1} << doublings);
  return std::min<clock::duration>(d, s_.max_delay);
}

login_throttle::peer_state* login_throttle::find(const std::string& peer, clock::time_point now) {
  auto it = peers_.find(peer);
  if (it == peers_.end())
    return nullptr;
  if (now - it->second->last_failure > s_.forget_after) {
    order_.erase(it->second);
    peers_.erase(it);
    return nullptr;
  }
  return &*it->second;
}

login_throttle::clock::duration login_throttle::before_login(const std::string& peer,
                                                              clock::time_point now) {
  auto p = find(peer, now);
  if (!p || p->failures < s_.free_failures)
    return clock::duration::zero();
  // This login takes the next slot; one sent at the same time takes the one after.
  auto at = std::max(now, p->not_before);
  p->not_before = at + delay_after(p->failures);
  return at - now;
}

void login_throttle::failed(const std::string& peer, clock::time_point now) {
  auto p = find(peer, now);
  if (!p) {
    if (s_.max_peers == 0)
      return;
    while (peers_.size() >= s_.max_peers) {
      peers_.erase(order_.front().peer);
      order_.pop_front();
    }
    order_.push_back(peer_state{peer, 0, now, now});
    peers_[peer] = std::prev(order_.end());
    p = &order_.back();
  } else {
    order_.splice(order_.end(), order_, peers_[peer]); // most recently failed last
  }
  ++p->failures;
  p->last_failure = now;
  p->not_before = std::max(p->not_before, now + delay_after(p->failures));
}

void login_throttle::succeeded(const std::string& peer) {
  auto it = peers_.find(peer);
  if (it == peers_.end())
    return;
  order_.erase(it->second);
  peers_.erase(it);
}

uint32_t login_throttle::failures(const std::string& peer) const {
  auto it = peers_.find(peer);
  return it == peers_.end() ? 0 : it->second->failures;
}

} // namespace twinrt::runtime
