// What a load costs under each way the translated guest can address its
// linear memory: the latency of a chain of dependent loads (pointer chasing,
// which is what an interpreter does: object -> type -> slot) and the
// throughput of independent ones, through
//   - a plain 64-bit pointer (native code),
//   - a base register plus a 32-bit index (split_wasm2c.py --rewrite basereg),
//   - the %gs segment (--rewrite gs), with a 64-bit and a 32-bit address.
// The chain walks 64 cache lines in an L1-resident cycle, so it measures the
// load pipeline, not the caches. Median of 7 runs each.
//
//   load_latency_bench [RESULTS.md]
#include <asm/prctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <vector>

#include "bench_util.h"

namespace {

constexpr long kIterations = 50'000'000;
constexpr int kRuns = 7;
constexpr int kLines = 64;

using Clock = std::chrono::steady_clock;

// Next element of the cycle: a permutation of the 64 lines.
int next_line(int i) { return (i * 17 + 1) % kLines; }

double median_ns(double (*measure)(uint8_t*), uint8_t* memory) {
  std::vector<double> runs;
  for (int r = 0; r < kRuns; r++) runs.push_back(measure(memory));
  return terrarium::bench::percentile(runs, 50);
}

template <typename Body>
double time_per_iteration(Body body) {
  auto start = Clock::now();
  body();
  std::chrono::duration<double, std::nano> elapsed = Clock::now() - start;
  return elapsed.count() / kIterations;
}

// The 32-bit chain lives at memory + 8 + 64*i and holds offsets (guest
// addresses); the 64-bit chain at memory + 65536 holds absolute pointers.
double plain_chain(uint8_t* memory) {
  uint64_t p = reinterpret_cast<uint64_t>(memory + 65536);
  double ns = time_per_iteration([&] {
    for (long i = 0; i < kIterations; i++) asm volatile("mov (%0), %0" : "+r"(p));
  });
  return p ? ns : -1;
}

double base_register_chain(uint8_t* memory) {
  uint64_t p = 8;
  uint64_t base = reinterpret_cast<uint64_t>(memory);
  double ns = time_per_iteration([&] {
    for (long i = 0; i < kIterations; i++) asm volatile("mov (%1,%0,1), %k0" : "+r"(p) : "r"(base));
  });
  return p ? ns : -1;
}

double segment_chain(uint8_t*) {
  uint64_t p = 8;
  double ns = time_per_iteration([&] {
    for (long i = 0; i < kIterations; i++) asm volatile("mov %%gs:(%0), %k0" : "+r"(p));
  });
  return p ? ns : -1;
}

double segment_chain_32(uint8_t*) {
  uint64_t p = 8;
  double ns = time_per_iteration([&] {
    for (long i = 0; i < kIterations; i++) asm volatile("mov %%gs:(%k0), %k0" : "+r"(p));
  });
  return p ? ns : -1;
}

// Four independent loads per iteration: throughput, not latency.
double base_register_throughput(uint8_t* memory) {
  uint64_t base = reinterpret_cast<uint64_t>(memory);
  uint64_t p = 8;
  return time_per_iteration([&] {
           for (long i = 0; i < kIterations; i++)
             asm volatile(
                 "mov (%1,%0,1), %%eax; mov 64(%1,%0,1), %%eax; mov 128(%1,%0,1), %%eax; "
                 "mov 192(%1,%0,1), %%eax" ::"r"(p),
                 "r"(base)
                 : "eax");
         }) /
         4;
}

double segment_throughput(uint8_t*) {
  uint64_t p = 8;
  return time_per_iteration([&] {
           for (long i = 0; i < kIterations; i++)
             asm volatile(
                 "mov %%gs:(%0), %%eax; mov %%gs:64(%0), %%eax; mov %%gs:128(%0), %%eax; "
                 "mov %%gs:192(%0), %%eax" ::"r"(p)
                 : "eax");
         }) /
         4;
}

}  // namespace

int main(int argc, char** argv) {
  void* mapped = mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapped == MAP_FAILED) {
    std::perror("load_latency_bench: mmap");
    return 1;
  }
  auto* memory = static_cast<uint8_t*>(mapped);
  if (syscall(SYS_arch_prctl, ARCH_SET_GS, reinterpret_cast<unsigned long>(memory)) != 0) {
    std::perror("load_latency_bench: arch_prctl(ARCH_SET_GS)");
    return 1;
  }
  auto* pointers = reinterpret_cast<uint64_t*>(memory + 65536);
  for (int i = 0; i < kLines; i++) {
    uint32_t next = 64 * next_line(i) + 8;
    std::memcpy(memory + 64 * i + 8, &next, 4);
    pointers[i * 8] = reinterpret_cast<uint64_t>(&pointers[next_line(i) * 8]);
  }

  struct Row {
    const char* what;
    double (*measure)(uint8_t*);
    bool latency;
  } rows[] = {
      {"dependent loads, plain pointer `mov (%r),%r` (native code)", plain_chain, true},
      {"dependent loads, base register `mov (%r15,%r,1),%r32` (basereg)", base_register_chain,
       true},
      {"dependent loads, segment `mov %gs:(%r),%r32` (gs)", segment_chain, true},
      {"dependent loads, segment, 32-bit address `mov %gs:(%r32),%r32` (gs)", segment_chain_32,
       true},
      {"independent loads, base register (per load)", base_register_throughput, false},
      {"independent loads, segment (per load)", segment_throughput, false},
  };
  std::ostringstream table;
  table << "# Load latency by addressing mode (`bench/load_latency_bench.cc`)\n\n"
        << terrarium::bench::machine_line() << ". Median of " << kRuns << " runs of " << kIterations
        << " iterations; an L1-resident chain.\n\n"
        << "| load | ns per load | latency vs plain |\n| --- | --- | --- |\n";
  double plain = 0;
  for (const Row& row : rows) {
    double ns = median_ns(row.measure, memory);
    if (row.measure == plain_chain) plain = ns;
    char line[256];
    if (row.latency) {
      std::snprintf(line, sizeof line, "| %s | %.3f | %.2f× |\n", row.what, ns, ns / plain);
    } else {
      std::snprintf(line, sizeof line, "| %s | %.3f | |\n", row.what, ns);
    }
    table << line;
  }
  std::cout << table.str();
  if (argc > 1) {
    std::ofstream out(argv[1]);
    out << table.str();
    if (!out) {
      std::cerr << "load_latency_bench: cannot write " << argv[1] << "\n";
      return 1;
    }
  }
  return 0;
}
