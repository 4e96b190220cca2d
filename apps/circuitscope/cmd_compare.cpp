// circuitscope compare BASE_REPORT.json POST_REPORT.json [--out compare.json]
#include <spdlog/spdlog.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "circuitscope/compare.hpp"
#include "circuitscope/error.hpp"
#include "circuitscope/html_report.hpp"
#include "circuitscope/report.hpp"
#include "command.hpp"

namespace circuitscope::app {
namespace {

struct CompareOptions {
  std::string base, post, out;
  std::string html;  // --html: the comparison as a page
  std::string list;  // emergent | retained | lost: print only those heads, "L.H" space-separated
};

int run_compare(const CompareOptions& o) {
  const ReportHeads base = read_report_heads(o.base);
  const ReportHeads post = read_report_heads(o.post);
  if (!base.fingerprint.empty() && base.fingerprint == post.fingerprint)
    spdlog::warn("both reports come from the same checkpoint (fingerprint {}): nothing was post-trained in between",
                 base.fingerprint);
  const CircuitComparison c = compare_circuits(base, post);
  if (o.list.empty()) {
    std::cout << format_comparison(c);
  } else {
    const std::vector<size_t>& which = o.list == "emergent" ? c.emergent : o.list == "retained" ? c.retained : c.lost;
    std::string line;
    for (size_t i : which)
      line += (line.empty() ? "" : " ") + std::to_string(c.heads[i].layer) + "." + std::to_string(c.heads[i].head);
    std::cout << line << "\n";
  }
  if (!o.out.empty()) {
    write_file_atomically(o.out, comparison_to_json(c).dump(1) + "\n");
    spdlog::info("wrote {}", o.out);
  }
  if (!o.html.empty()) {
    const nlohmann::json j = comparison_to_json(c);
    write_file_atomically(o.html, html_page({compare_section(j, o.out.empty() ? o.post : o.out, "s1")},
                                            "circuitscope compare: " + o.post + " against " + o.base));
    spdlog::info("wrote {}", o.html);
  }
  return 0;
}

CommandRegistrar reg_cmd_compare({"compare", "Compare the head circuits of a base and a post-trained model's attribute reports",
                      [](CLI::App* sub) {
                        auto o = std::make_shared<CompareOptions>();
                        sub->add_option("base", o->base, "attribute report of the base model")->required();
                        sub->add_option("post", o->post, "attribute report of the post-trained model")->required();
                        sub->add_option("--out", o->out, "write the comparison as JSON");
                        sub->add_option("--html", o->html, "also write the comparison as an HTML page (as `report` does)");
                        sub->add_option("--list", o->list,
                                        "print only the emergent, retained or lost heads as LAYER.HEAD, space-separated "
                                        "(for scripts: e.g. toy eval --ablate-head)")
                            ->check(CLI::IsMember({"emergent", "retained", "lost"}));
                        sub->footer("Reads the reports' \"heads\" arrays (attribute with --top-n or --threshold). "
                                    "Emergent heads are in the post-trained circuit only, retained in both, lost in "
                                    "the base circuit only; E = (I_post - I_base)/(I_post + I_base + 1e-6) per head.");
                        return [o] { return run_compare(*o); };
                      }});

}  // namespace
}  // namespace circuitscope::app
