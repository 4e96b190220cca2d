// A sweep's units: the plan, shards, claims (flock), staleness, and running them.
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <chrono>
#include <cstring>
#include <ctime>
#include <map>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "circuitscope/config.hpp"
#include "circuitscope/error.hpp"
#include "circuitscope/json_limits.hpp"
#include "circuitscope/model.hpp"
#include "circuitscope/report.hpp"
#include "circuitscope/runtime.hpp"
#include "circuitscope/sha256.hpp"
#include "circuitscope/sweep.hpp"
#include "sweep/sweep_files.hpp"

namespace circuitscope::sweep {

namespace fs = std::filesystem;
using nlohmann::json;

// ---- files ----

std::string unit_dir(const std::string& dir, const Checkpoint& c) { return (fs::path(dir) / "units" / c.name).string(); }
std::string unit_result_path(const std::string& dir, const Unit& u) {
  return unit_dir(dir, u.checkpoint) + "/chunk-" + std::to_string(u.chunk) + ".json";
}
std::string unit_lock_path(const std::string& dir, const Unit& u) {
  return unit_dir(dir, u.checkpoint) + "/chunk-" + std::to_string(u.chunk) + ".lock";
}
std::string unit_pairs_path(const std::string& dir, const Unit& u) {
  return unit_dir(dir, u.checkpoint) + "/chunk-" + std::to_string(u.chunk) + ".pairs.jsonl";
}
std::string chunk_data_path(const std::string& dir, const Unit& u) {
  return (fs::path(dir) / "data" / ("chunk-" + std::to_string(u.chunk) + ".jsonl")).string();
}

std::string chunk_text(const Plan& plan, const Unit& u) {
  std::string text;
  for (int64_t i = u.begin; i < u.end; ++i) text += plan.item_lines[i] + "\n";
  return text;
}

std::optional<json> read_unit_result(const std::string& path) {
  if (!fs::exists(path)) return std::nullopt;
  try {
    const std::string text = read_text_file(path);
    check_json_depth(text, path);
    json j = json::parse(text);
    if (!j.is_object() || j.value("unit_version", 0) != kUnitVersion || !j.contains("inputs")) return std::nullopt;
    return j;
  } catch (const json::exception&) {
    return std::nullopt;  // unreadable: redone (results are only ever renamed into place whole)
  } catch (const Error&) {
    return std::nullopt;  // nested too deep: not ours either
  }
}

std::string host_name() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// ---- the plan ----

std::string Unit::id() const { return checkpoint.name + "/chunk-" + std::to_string(chunk); }

Plan make_plan(const SweepSpec& spec) {
  Plan p;
  const std::string file = spec.constructs_pairs() ? spec.prompts : spec.pairs;
  std::istringstream in(read_text_file(file));
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    p.item_lines.push_back(line);
  }
  p.n_items = static_cast<int64_t>(p.item_lines.size());
  if (p.n_items == 0) throw Error(ErrorCode::kInput, file + ": no " + (spec.constructs_pairs() ? "prompt" : "pair") + " in it");
  // chunk_size may be anything >= 1 (a huge one means one chunk): no overflow in n + size - 1.
  const int64_t n_chunks = p.n_items / spec.chunk_size + (p.n_items % spec.chunk_size != 0 ? 1 : 0);
  for (const Checkpoint* c : spec.all_checkpoints())
    for (int64_t k = 0; k < n_chunks; ++k) {
      Unit u;
      u.index = static_cast<int64_t>(p.units.size());
      u.checkpoint = *c;
      u.chunk = k;
      u.begin = k * spec.chunk_size;
      u.end = spec.chunk_size >= p.n_items - u.begin ? p.n_items : u.begin + spec.chunk_size;
      p.units.push_back(u);
    }
  return p;
}

Shard parse_shard(const std::string& s) {
  const auto slash = s.find('/');
  auto bad = [&] { return Error(ErrorCode::kUsage, "shard '" + s + "': expected I/N with 1 <= I <= N, e.g. 2/3"); };
  if (slash == std::string::npos) throw bad();
  Shard sh;
  try {
    size_t a = 0, b = 0;
    sh.index = std::stoll(s.substr(0, slash), &a);
    sh.count = std::stoll(s.substr(slash + 1), &b);
    if (a != slash || b != s.size() - slash - 1) throw bad();
  } catch (const std::exception&) {
    throw bad();
  }
  if (sh.count < 1 || sh.index < 1 || sh.index > sh.count) throw bad();
  return sh;
}

std::vector<const Unit*> shard_units(const Plan& plan, const Shard& shard) {
  const int64_t n = static_cast<int64_t>(plan.units.size());
  const int64_t lo = (shard.index - 1) * n / shard.count;
  const int64_t hi = shard.index * n / shard.count;
  std::vector<const Unit*> out;
  for (int64_t i = lo; i < hi; ++i) out.push_back(&plan.units[i]);
  return out;
}

// ---- identity and inputs ----

namespace {
// A tokenizer given apart from the checkpoints: a folder (its tokenizer files) or a file.
std::string tokenizer_identity(const std::string& path) {
  if (path.empty()) return "";
  std::string material;
  if (fs::is_directory(path)) {
    for (const char* name : {"tokenizer.json", "tokenizer_config.json", "tokenizer.model"}) {
      const fs::path f = fs::path(path) / name;
      if (fs::exists(f)) material += std::string(name) + "\n" + read_text_file(f.string());
    }
  } else {
    material = read_text_file(path);
  }
  return "sha256:" + sha256_hex(material);
}
}  // namespace

std::string checkpoint_identity(const std::string& dir) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ".safetensors") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  if (files.empty()) throw Error(ErrorCode::kInput, "checkpoint '" + dir + "' has no .safetensors file");
  std::string material;
  // Small files read whole: the architecture, and the tokenizer and chat template the pairs go through.
  for (const char* name : {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                           "tokenizer.model"}) {
    const fs::path f = fs::path(dir) / name;
    if (fs::exists(f)) material += std::string(name) + "\n" + read_text_file(f.string());
  }
  constexpr int64_t kHead = 64 << 10, kBlock = 4 << 10, kBlocks = 32;
  for (const fs::path& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) throw Error(ErrorCode::kIo, "cannot read '" + f.string() + "'");
    const int64_t size = static_cast<int64_t>(fs::file_size(f));
    material += f.filename().string() + "\n" + std::to_string(size) + "\n";
    auto take = [&](int64_t off, int64_t len) {
      len = std::max<int64_t>(0, std::min(len, size - off));
      std::string buf(static_cast<size_t>(len), '\0');
      in.seekg(off);
      in.read(buf.data(), len);
      material += buf;
    };
    take(0, kHead);
    for (int64_t b = 0; b < kBlocks; ++b) take(kHead + (size - kHead) * b / kBlocks, kBlock);
  }
  return "sha256-sampled:" + sha256_hex(material);
}

json unit_inputs(const SweepSpec& spec, const Plan& plan, const Unit& unit, const std::string& identity,
                 const std::string& tokenizer) {
  const AttributeBlock& a = spec.attribute;
  json options = {{"method", attribution_method_name(a.spec.method)},
                  {"ig_steps", a.spec.eap_options().ig_steps},
                  {"metric", metric_name(a.spec.metric)},
                  {"loss", a.spec.loss},
                  {"kv_edges", kv_edges_name(a.spec.kv_edges)},
                  {"dtype", a.dtype},
                  {"chat", a.data.chat},
                  {"think", a.data.think},
                  {"system", a.data.system},
                  {"tokenizer", tokenizer},
                  {"skip_bad", a.data.skip_bad}};
  json data = {{"kind", spec.constructs_pairs() ? "prompts" : "pairs"},
               {"items", {unit.begin, unit.end}},
               {"sha256", sha256_hex(chunk_text(plan, unit))}};
  if (spec.constructs_pairs()) {
    const OpeningOptions& g = spec.generation.generation;
    data["generation"] = {{"think", g.think.value_or(true)}, {"system", g.system}, {"max_new_tokens", g.max_new_tokens},
                          {"greedy", g.sampling.greedy},     {"temperature", g.sampling.temperature},
                          {"top_p", g.sampling.top_p},       {"top_k", g.sampling.top_k},
                          {"seed", g.sampling.seed},         {"batch_size", g.batch_size},
                          {"keep_identical", spec.generation.keep_identical}};
  }
  return {{"checkpoint", identity}, {"data", data}, {"options", options}};
}

namespace {
std::string short_value(const json& v) {
  std::string s = v.dump();
  return s.size() > 40 ? s.substr(0, 37) + "..." : s;
}
void diff(const json& a, const json& b, const std::string& where, std::string& out) {
  if (!out.empty()) return;
  if (a.is_object() && b.is_object()) {
    for (const auto& [k, v] : b.items()) {
      const std::string w = where.empty() ? k : where + "." + k;
      if (!a.contains(k)) {
        out = w + " added (" + short_value(v) + ")";
        return;
      }
      diff(a[k], v, w, out);
    }
    for (const auto& [k, v] : a.items())
      if (!b.contains(k) && out.empty()) out = (where.empty() ? k : where + "." + k) + " removed";
    return;
  }
  if (a != b) out = where + " " + short_value(a) + " -> " + short_value(b);
}
}  // namespace

std::string inputs_difference(const json& recorded, const json& current) {
  std::string out;
  diff(recorded, current, "", out);
  return out;
}

const char* unit_state_name(UnitState s) {
  switch (s) {
    case UnitState::kMissing: return "missing";
    case UnitState::kDone: return "done";
    case UnitState::kStale: return "stale";
  }
  return "?";
}

// ---- claims ----

// An exclusive flock on the unit's lock file, held while the unit runs. The kernel drops it when
// the process dies (SIGKILL, pre-emption), so a claim never outlives its holder. The file's text
// says who holds (or last held) the claim; it is emptied when the unit finishes.
class Claim {
 public:
  enum class Result { kTaken, kBusy };
  explicit Claim(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw Error(ErrorCode::kIo, "cannot open lock '" + path + "': " + std::strerror(errno));
  }
  ~Claim() {
    if (fd_ >= 0) ::close(fd_);  // also releases the lock
  }
  Claim(const Claim&) = delete;
  Claim& operator=(const Claim&) = delete;

  Result lock(bool wait) {
    while (::flock(fd_, LOCK_EX | (wait ? 0 : LOCK_NB)) != 0) {
      if (errno == EINTR) continue;
      if (errno == EWOULDBLOCK) return Result::kBusy;
      throw Error(ErrorCode::kIo, "cannot lock '" + path_ + "': " + std::strerror(errno));
    }
    return Result::kTaken;
  }
  // Who held the claim before (their text), "" when it was released cleanly.
  std::string previous_holder() const {
    std::string text(512, '\0');
    const ssize_t n = ::pread(fd_, text.data(), text.size(), 0);
    text.resize(n > 0 ? static_cast<size_t>(n) : 0);
    while (!text.empty() && (text.back() == '\n' || text.back() == '\0')) text.pop_back();
    return text;
  }
  void write_holder(const std::string& text) {
    if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size()))
      throw Error(ErrorCode::kIo, "cannot write lock '" + path_ + "': " + std::strerror(errno));
  }
  void clear_holder() {
    if (::ftruncate(fd_, 0) != 0) throw Error(ErrorCode::kIo, "cannot truncate lock '" + path_ + "'");
  }

 private:
  std::string path_;
  int fd_ = -1;
};

// Whether a live process holds the unit's claim now (a shared lock cannot be had).
bool claim_is_held(const std::string& path) {
  if (!fs::exists(path)) return false;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool held = ::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd);
  return held;
}

std::string holder_text(const std::string& lock_path) {
  std::ifstream in(lock_path);
  std::string s;
  std::getline(in, s);
  return s;
}

// ---- status ----

namespace {
// Identities computed once per status or run.
struct Identities {
  std::map<std::string, std::string> by_name;
  std::optional<std::string> tokenizer;
  const std::string& of(const Checkpoint& c) {
    auto it = by_name.find(c.name);
    if (it == by_name.end()) it = by_name.emplace(c.name, checkpoint_identity(c.path)).first;
    return it->second;
  }
  const std::string& of_tokenizer(const std::string& path) {
    if (!tokenizer) tokenizer = tokenizer_identity(path);
    return *tokenizer;
  }
};

json unit_inputs_for(const SweepSpec& spec, const Plan& plan, const Unit& u, Identities& ids) {
  json in = unit_inputs(spec, plan, u, ids.of(u.checkpoint), ids.of_tokenizer(spec.attribute.data.tokenizer));
  if (spec.constructs_pairs()) {
    // The other model of the pair matters too: the base for a checkpoint, the last checkpoint for the base.
    const Checkpoint& partner = u.checkpoint.base ? spec.checkpoints.back() : spec.base;
    in["partner"] = ids.of(partner);
  }
  return in;
}
}  // namespace

std::vector<UnitStatus> sweep_status(const SweepSpec& spec, const Plan& plan, const std::string& dir) {
  Identities ids;
  std::vector<UnitStatus> out;
  for (const Unit& u : plan.units) {
    UnitStatus st;
    st.unit = &u;
    const std::string lock = unit_lock_path(dir, u);
    st.running = claim_is_held(lock);
    const auto result = read_unit_result(unit_result_path(dir, u));
    if (result) {
      const std::string d = inputs_difference((*result)["inputs"], unit_inputs_for(spec, plan, u, ids));
      st.state = d.empty() ? UnitState::kDone : UnitState::kStale;
      st.reason = d;
    } else if (!st.running && fs::exists(lock)) {
      const std::string h = holder_text(lock);
      if (h.rfind("failed", 0) == 0) st.reason = h;
      else if (!h.empty()) st.reason = "interrupted (" + h + ")";
    }
    out.push_back(st);
  }
  return out;
}

nlohmann::ordered_json status_json(const SweepSpec& spec, const std::vector<UnitStatus>& status) {
  nlohmann::ordered_json j;
  j["sweep"] = spec.source;
  int64_t done = 0, missing = 0, stale = 0, running = 0;
  nlohmann::ordered_json per = nlohmann::ordered_json::array();
  for (const Checkpoint* c : spec.all_checkpoints()) {
    nlohmann::ordered_json e;
    e["name"] = c->name;
    e["step"] = c->step;
    nlohmann::ordered_json units = nlohmann::ordered_json::array();
    int64_t d = 0, m = 0, s = 0, r = 0;
    for (const UnitStatus& st : status) {
      if (st.unit->checkpoint.name != c->name) continue;
      (st.state == UnitState::kDone ? d : st.state == UnitState::kStale ? s : m)++;
      r += st.running;
      nlohmann::ordered_json u = {{"chunk", st.unit->chunk}, {"state", unit_state_name(st.state)}, {"running", st.running}};
      if (!st.reason.empty()) u["reason"] = st.reason;
      units.push_back(u);
    }
    e["done"] = d;
    e["missing"] = m;
    e["stale"] = s;
    e["running"] = r;
    e["units"] = units;
    per.push_back(e);
    done += d;
    missing += m;
    stale += s;
    running += r;
  }
  j["units"] = {{"total", static_cast<int64_t>(status.size())}, {"done", done}, {"missing", missing},
                {"stale", stale}, {"running", running}};
  j["complete"] = missing == 0 && stale == 0;
  j["checkpoints"] = per;
  return j;
}

std::string format_status(const SweepSpec& spec, const std::vector<UnitStatus>& status) {
  const auto j = status_json(spec, status);
  std::ostringstream os;
  os << "sweep " << spec.source << ": " << j["units"]["done"] << " of " << j["units"]["total"] << " units done, "
     << j["units"]["missing"] << " missing, " << j["units"]["stale"] << " stale, " << j["units"]["running"]
     << " running\n";
  size_t w = 4;
  for (const auto& c : j["checkpoints"]) w = std::max(w, c["name"].get<std::string>().size());
  char line[256];
  std::snprintf(line, sizeof line, "%-*s %8s %5s %7s %5s %7s\n", static_cast<int>(w), "name", "step", "done", "missing",
                "stale", "running");
  os << line;
  for (const auto& c : j["checkpoints"]) {
    std::snprintf(line, sizeof line, "%-*s %8lld %5lld %7lld %5lld %7lld\n", static_cast<int>(w),
                  c["name"].get<std::string>().c_str(), static_cast<long long>(c["step"].get<int64_t>()),
                  static_cast<long long>(c["done"].get<int64_t>()), static_cast<long long>(c["missing"].get<int64_t>()),
                  static_cast<long long>(c["stale"].get<int64_t>()), static_cast<long long>(c["running"].get<int64_t>()));
    os << line;
    for (const auto& u : c["units"])
      if (u.contains("reason"))
        os << "  chunk-" << u["chunk"] << " " << u["state"].get<std::string>() << ": " << u["reason"].get<std::string>()
           << "\n";
  }
  return os.str();
}

// ---- running ----

std::string unit_scores_path(const std::string& dir, const Unit& u) {
  return unit_dir(dir, u.checkpoint) + "/chunk-" + std::to_string(u.chunk) + ".scores.f32";
}

namespace {

// Test-only fault injection: CS_SWEEP_FAILPOINT=kill:NAME/chunk-K:B sends this process SIGKILL
// once unit NAME/chunk-K has scored B batches, i.e. mid-unit (claimed, pairs built, no result),
// so that the fault tests need not race a kill against the unit.
void maybe_kill_at(const Unit& u, size_t batches_done) {
  static const char* fp = std::getenv("CS_SWEEP_FAILPOINT");
  if (!fp) return;
  const std::string spec = fp;
  const std::string want = "kill:" + u.id() + ":" + std::to_string(batches_done);
  if (spec == want) {
    spdlog::warn("CS_SWEEP_FAILPOINT={}: killing this process (SIGKILL)", spec);
    spdlog::default_logger()->flush();
    ::raise(SIGKILL);
  }
}

void write_scores(const std::string& path, const std::vector<double>& scores) {
  // float32: the scores come from a float32 matrix, so nothing is lost, at half the size of float64.
  std::vector<float> f(scores.begin(), scores.end());
  write_file_atomically(path, std::string(reinterpret_cast<const char*>(f.data()), f.size() * sizeof(float)));
}

class UnitRunner {
 public:
  UnitRunner(const SweepSpec& spec, const Plan& plan, const std::string& dir) : spec_(spec), plan_(plan), dir_(dir) {}

  enum class Outcome { kComputed, kRecomputed, kRedone, kAlreadyDone, kBusy };

  // Claims the unit (or reports kBusy without waiting), then does it unless it is already done.
  // A unit that throws leaves "failed: ..." as its claim text, and the error goes on to the caller.
  Outcome run(const Unit& u, bool wait, const std::string& progress) {
    fs::create_directories(unit_dir(dir_, u.checkpoint));
    Claim claim(unit_lock_path(dir_, u));
    if (claim.lock(wait) == Claim::Result::kBusy) return Outcome::kBusy;
    const std::string who = "pid " + std::to_string(::getpid()) + " on " + host_name();
    try {
      return run_claimed(u, claim, who, progress);
    } catch (const std::exception& e) {
      std::string what = e.what();
      std::replace(what.begin(), what.end(), '\n', ' ');  // the claim text is one line
      claim.write_holder("failed in " + who + " at " + utc_now() + ": " + what + "\n");
      throw;
    }
  }

 private:
  Outcome run_claimed(const Unit& u, Claim& claim, const std::string& who, const std::string& progress) {
    const json inputs = unit_inputs_for(spec_, plan_, u, ids_);
    const std::string result_path = unit_result_path(dir_, u);
    const auto existing = read_unit_result(result_path);
    Outcome outcome = Outcome::kComputed;
    if (existing) {
      const std::string d = inputs_difference((*existing)["inputs"], inputs);
      if (d.empty()) return Outcome::kAlreadyDone;
      spdlog::info("{} {}: the recorded result is stale ({}); recomputing", progress, u.id(), d);
      outcome = Outcome::kRecomputed;
    } else {
      const std::string before = claim.previous_holder();
      if (before.rfind("failed", 0) == 0) {
        spdlog::info("{} {}: a previous run {}; trying again", progress, u.id(), before);
        outcome = Outcome::kRedone;
      } else if (!before.empty()) {
        spdlog::info("{} {}: a previous run was interrupted in it ({}); redoing it", progress, u.id(), before);
        outcome = Outcome::kRedone;
      }
    }
    claim.write_holder(who + ", started " + utc_now() + "\n");
    // Leftovers of an interrupted write are never read (files are renamed into place whole).
    const std::string stem = "chunk-" + std::to_string(u.chunk) + ".";
    for (const auto& e : fs::directory_iterator(unit_dir(dir_, u.checkpoint))) {
      const std::string name = e.path().filename().string();
      if (name.rfind(stem, 0) == 0 && name.find(".tmp") != std::string::npos) fs::remove(e.path());
    }
    compute(u, inputs, progress);
    claim.clear_holder();
    return outcome;
  }

  HookedTransformer& model_of(const Checkpoint& c) {
    if (!model_ || model_name_ != c.name) {
      model_.reset();
      model_ = HookedTransformer::from_pretrained(c.path, {spec_.attribute.dtype, spec_.attribute.device});
      model_name_ = c.name;
    }
    return *model_;
  }

  void compute(const Unit& u, const json& inputs, const std::string& progress) {
    const auto t0 = std::chrono::steady_clock::now();
    const Checkpoint& c = u.checkpoint;
    std::string data_path;
    json where = {{"checkpoint", c.path}};
    if (spec_.constructs_pairs()) {
      // Pairs built in the unit: clean = this checkpoint's opening, corrupted = the base's; for the
      // base, clean = its own opening, corrupted = the last checkpoint's.
      model_.reset();  // generation loads its two models one at a time
      const Checkpoint& partner = c.base ? spec_.checkpoints.back() : spec_.base;
      const std::vector<PromptItem> all = read_prompt_file(spec_.prompts);
      if (static_cast<int64_t>(all.size()) != plan_.n_items)
        throw Error(ErrorCode::kInput, spec_.prompts + ": holds " + std::to_string(all.size()) +
                                           " prompts; the plan was made for " + std::to_string(plan_.n_items));
      const std::vector<PromptItem> items(all.begin() + u.begin, all.begin() + u.end);
      OpeningPairOptions o = spec_.generation;
      o.reverse = c.base;
      const OpeningPairs pairs = c.base ? make_opening_pairs(partner.path, c.path, items, o)
                                        : make_opening_pairs(c.path, partner.path, items, o);
      std::string text;
      for (const std::string& l : pairs.lines) text += l + "\n";
      data_path = unit_pairs_path(dir_, u);
      write_file_atomically(data_path, text);
      where["partner"] = partner.path;
    } else {
      data_path = chunk_data_path(dir_, u);
      const std::string text = chunk_text(plan_, u);
      fs::create_directories(fs::path(data_path).parent_path());
      if (!fs::exists(data_path) || read_text_file(data_path) != text) write_file_atomically(data_path, text);
    }
    where["data"] = data_path;

    HookedTransformer& model = model_of(c);
    PairSource src = spec_.attribute.data;
    src.path = data_path;
    src.allow_empty = true;  // e.g. every opening identical to the base's: the unit holds no pair
    const PairDataset ds = load_pair_dataset(src, c.path, model.config(), spec_.attribute.spec.metric);
    const ModelConfig& mc = model.config();
    const GraphSpec gs{mc.n_layers, mc.n_heads, mc.n_kv_heads, spec_.attribute.spec.kv_edges};
    const Graph graph(gs);
    json result;
    result["unit_version"] = kUnitVersion;
    result["unit"] = u.id();
    result["checkpoint"] = c.name;
    result["step"] = c.step;
    result["chunk"] = u.chunk;
    result["inputs"] = inputs;
    result["where"] = where;
    result["graph"] = {{"n_layers", gs.n_layers}, {"n_heads", gs.n_heads}, {"n_kv_heads", gs.n_kv_heads},
                       {"kv_edges", kv_edges_name(gs.kv_edges)}, {"n_edges", graph.n_edges()}};
    result["n_examples"] = static_cast<int64_t>(ds.examples.size());
    result["skipped"] = ds.skipped;
    if (!ds.examples.empty()) {
      size_t batches = 0;
      const EdgeScores es = score_edges(model, graph, ds.examples, spec_.attribute.spec, [&](size_t done, size_t total) {
        spdlog::debug("{} {}: {}/{} pairs", progress, u.id(), done, total);
        maybe_kill_at(u, ++batches);
      });
      result["metric_clean"] = es.metric_clean;
      result["metric_corrupted"] = es.metric_corrupted;
      // The mean over the chunk's pairs, by edge index: float32, little-endian, n_edges values.
      const std::string scores_path = unit_scores_path(dir_, u);
      write_scores(scores_path, es.scores);
      result["scores"] = {{"file", fs::path(scores_path).filename().string()},
                          {"dtype", "float32"},
                          {"sha256", sha256_hex(read_text_file(scores_path))}};
    } else {
      spdlog::warn("{} {}: no pair in this chunk ({} skipped); it counts 0 pairs in the merge", progress, u.id(),
                   ds.skipped);
    }
    // What differs between two runs of the same unit (time, machine) lives in "run" alone: the rest
    // of the file is the same bytes for the same inputs.
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    result["run"] = {{"seconds", seconds}, {"host", host_name()}, {"pid", static_cast<int64_t>(::getpid())},
                     {"finished", utc_now()}};
    // The result is the unit's commit: written last, after its scores.
    write_file_atomically(unit_result_path(dir_, u), result.dump(1) + "\n");
    spdlog::info("{} {}: {} pair(s) in {:.2f} s", progress, u.id(), ds.examples.size(), seconds);
  }

  const SweepSpec& spec_;
  const Plan& plan_;
  std::string dir_;
  Identities ids_;
  std::unique_ptr<HookedTransformer> model_;
  std::string model_name_;
};

// DIR/sweep.json: written when absent; when the resolved sweep differs from it (e.g. a glob that
// now matches more checkpoints), rewritten with a warning, since shards of one array must plan alike.
void record_plan(const std::string& dir, const json& resolved) {
  const std::string path = (fs::path(dir) / "sweep.json").string();
  const std::string text = resolved.dump(1) + "\n";
  if (fs::exists(path)) {
    const std::string old = read_text_file(path);
    if (old == text) return;
    std::string what;
    try {
      check_json_depth(old, path);
      what = inputs_difference(json::parse(old), resolved);
    } catch (const json::exception&) {
      what = "unreadable";
    } catch (const Error&) {
      what = "unreadable (nested too deep)";
    }
    spdlog::warn("{} described another sweep ({}); rewriting it. Array tasks must see the same plan: plan once "
                 "(`sweep plan`, as scripts/slurm/submit_sweep.sh does) and run every task from {}",
                 path, what, path);
  }
  write_file_atomically(path, text);
}

}  // namespace

RunCounts run_units(const SweepSpec& spec, const json& resolved, const std::string& dir, const Shard& shard) {
  const auto t0 = std::chrono::steady_clock::now();
  fs::create_directories(dir);
  record_plan(dir, resolved);

  const Plan plan = make_plan(spec);
  const std::vector<const Unit*> mine = shard_units(plan, shard);
  RunCounts counts;
  counts.units = static_cast<int64_t>(mine.size());
  spdlog::info("sweep: {} checkpoint(s) x {} chunk(s) of up to {} {} = {} units; shard {}/{} has {}",
               spec.all_checkpoints().size(), plan.units.size() / spec.all_checkpoints().size(), spec.chunk_size,
               spec.constructs_pairs() ? "prompts" : "pairs", plan.units.size(), shard.index, shard.count, mine.size());
  UnitRunner runner(spec, plan, dir);
  std::vector<const Unit*> busy;
  std::vector<std::pair<const Unit*, Error>> failed;
  auto attempt = [&](const Unit& u, bool wait, const std::string& progress) -> std::optional<UnitRunner::Outcome> {
    try {
      return runner.run(u, wait, progress);
    } catch (const Error& e) {
      spdlog::error("{} {}: failed: {}", progress, u.id(), e.what());
      failed.emplace_back(&u, e);
    } catch (const std::exception& e) {
      spdlog::error("{} {}: failed: {}", progress, u.id(), e.what());
      failed.emplace_back(&u, Error(ErrorCode::kInternal, e.what()));
    }
    return std::nullopt;
  };
  auto tally = [&](UnitRunner::Outcome o, const Unit& u, const std::string& progress) {
    switch (o) {
      case UnitRunner::Outcome::kComputed: ++counts.computed; break;
      case UnitRunner::Outcome::kRecomputed: ++counts.recomputed; break;
      case UnitRunner::Outcome::kRedone: ++counts.redone; break;
      case UnitRunner::Outcome::kAlreadyDone:
        ++counts.already_done;
        spdlog::debug("{} {}: already done", progress, u.id());
        break;
      case UnitRunner::Outcome::kBusy: break;
    }
  };
  int64_t k = 0;
  for (const Unit* u : mine) {
    const std::string progress = "[" + std::to_string(++k) + "/" + std::to_string(mine.size()) + "]";
    const auto o = attempt(*u, /*wait=*/false, progress);
    if (!o) continue;
    if (*o == UnitRunner::Outcome::kBusy) {
      const std::string holder = holder_text(unit_lock_path(dir, *u));
      spdlog::info("{} {}: another process holds it{}; taking the next unit, will come back", progress, u->id(),
                   holder.empty() ? "" : " (" + holder + ")");
      busy.push_back(u);
      continue;
    }
    tally(*o, *u, progress);
  }
  for (const Unit* u : busy) {
    spdlog::info("waiting for {} (held by another process)", u->id());
    const auto o = attempt(*u, /*wait=*/true, "[wait]");
    if (!o) continue;
    if (*o == UnitRunner::Outcome::kAlreadyDone) ++counts.waited;
    else tally(*o, *u, "[wait]");
  }
  counts.failed = static_cast<int64_t>(failed.size());
  counts.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  spdlog::info("shard {}/{}: {} unit(s): {} computed, {} recomputed (stale), {} redone (interrupted or failed before), "
               "{} already done, {} finished by another process, {} failed; {}",
               shard.index, shard.count, counts.units, counts.computed, counts.recomputed, counts.redone,
               counts.already_done, counts.waited, counts.failed, format_duration(counts.seconds));
  if (!failed.empty()) {
    std::string list;
    for (const auto& [u, e] : failed) list += "\n " + u->id() + ": " + e.what();
    // The first unit's error code: the task fails, so a dependent merge does not run.
    throw Error(failed.front().second.code(), "shard " + std::to_string(shard.index) + "/" +
                                                  std::to_string(shard.count) + ": " + std::to_string(failed.size()) +
                                                  " unit(s) failed; the others are done. Fix the cause and run the "
                                                  "shard again:" + list);
  }
  return counts;
}

}  // namespace circuitscope::sweep
