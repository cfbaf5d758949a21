// Bindings for profiling (chute/trace.h): the engine's spans and counters.
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <tuple>
#include <vector>

#include "common.h"
#include "chute/trace.h"

namespace nb = nanobind;

namespace chute::bindings {

void init_profile(nb::module_& m) {
  m.def("trace_start", &trace::StartTrace, "Starts recording the engine's spans in this process (clears earlier ones).");
  m.def("trace_stop",
        [] {
          std::vector<trace::Event> events = trace::StopTrace();
          std::vector<std::tuple<std::string, int64_t, int64_t, uint64_t, std::string>> out;
          out.reserve(events.size());
          for (auto& e : events) out.emplace_back(e.name, e.start_ns, e.duration_ns, e.thread_id, e.thread_name);
          return out;
        },
        "Stops recording: (name, start ns, duration ns, thread id, thread name) of each span, on the clock of "
        "time.monotonic_ns().");
  m.def("trace_counters",
        [] {
          nb::dict d;
          trace::counters().ForEach([&](const char* name, std::atomic<uint64_t>& counter) { d[name] = counter.load(); });
          return d;
        },
        "This process's engine counters since it started (a forked child starts at zero).");
}

}  // namespace chute::bindings
