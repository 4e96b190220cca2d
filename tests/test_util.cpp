#include "test_util.hpp"

#include <ftw.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <stdexcept>
#include <cstdio>
#include <sys/wait.h>

namespace cs_test {

std::string make_temp_dir(const std::string& tag, const std::string& parent) {
  const char* env = std::getenv("TMPDIR");
  const std::string base = !parent.empty() ? parent : (env && *env ? env : "/tmp");
  std::string tmpl = base + "/cs_test_" + tag + "_XXXXXX";
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed for " + tmpl);
  return tmpl;
}

void remove_tree(const std::string& path) {
  nftw(path.c_str(), [](const char* p, const struct stat*, int, struct FTW*) { return ::remove(p); }, 16,
       FTW_DEPTH | FTW_PHYS);
}

int run_command(const std::string& cmd, std::string& out) {
  out.clear();
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return -1;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

}  // namespace cs_test
