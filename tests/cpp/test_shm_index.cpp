// Contention test of the node-local cache index (cpp/src/cache/shm_index.h): several
// processes x threads acquire and release chunks of a small cache (forcing eviction),
// one process is SIGKILLed half-way; every acquired file must hold its chunk's bytes,
// nobody may hang, and the segment must be gone when all are done.
// Built with CHUTE_SANITIZE=thread by tests/python/test_native.py.
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cache/shm_index.h"

namespace {

constexpr uint32_t kChunks = 24;
constexpr uint64_t kChunkBytes = 4096;

uint8_t Pattern(uint32_t c) { return static_cast<uint8_t>(c * 7 + 1); }

int Worker(const std::string& dir, int threads, int rounds, unsigned seed) {
  auto index = chute::ShmIndex::Attach(dir, kChunks, 6 * kChunkBytes);
  if (!index.ok()) {
    std::fprintf(stderr, "attach: %s\n", index.status().ToString().c_str());
    return 1;
  }
  std::atomic<int> failures{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      std::mt19937 rng(seed * 131 + t);
      for (int r = 0; r < rounds; ++r) {
        uint32_t c = rng() % kChunks;
        auto path = (*index)->Acquire(c, kChunkBytes, 30, [&](const std::string& temp) {
          std::ofstream out(temp, std::ios::binary);
          std::string bytes(kChunkBytes, static_cast<char>(Pattern(c)));
          out.write(bytes.data(), bytes.size());
          return out ? chute::Status::OK() : chute::Status::IOError(temp);
        });
        if (!path.ok()) {
          std::fprintf(stderr, "acquire %u: %s\n", c, path.status().ToString().c_str());
          ++failures;
          continue;
        }
        std::ifstream in(*path, std::ios::binary);
        std::string got((std::istreambuf_iterator<char>(in)), {});
        if (got.size() != kChunkBytes || static_cast<uint8_t>(got[0]) != Pattern(c) ||
            static_cast<uint8_t>(got.back()) != Pattern(c)) {
          std::fprintf(stderr, "chunk %u has wrong bytes\n", c);
          ++failures;
        }
        (*index)->Release(c);
      }
    });
  }
  for (auto& t : pool) t.join();
  return failures ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = argc > 1 ? argv[1] : "/tmp/chute-shm-test";
  std::filesystem::remove_all(dir);
  // A victim that is killed while it works.
  pid_t victim = fork();
  if (victim == 0) _exit(Worker(dir, 2, 1 << 30, 99));
  std::vector<pid_t> children;
  for (unsigned p = 0; p < 3; ++p) {
    pid_t pid = fork();
    if (pid == 0) _exit(Worker(dir, 3, 300, p + 1));
    children.push_back(pid);
  }
  usleep(200 * 1000);
  kill(victim, SIGKILL);
  waitpid(victim, nullptr, 0);
  int rc = Worker(dir, 2, 300, 7);  // this process too
  for (pid_t pid : children) {
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) rc = 1;
  }
  auto index = chute::ShmIndex::Attach(dir, kChunks, 6 * kChunkBytes);
  if (!index.ok()) return 1;
  std::string name = (*index)->shm_name();
  uint64_t used = (*index)->used_bytes();
  (*index)->Detach();
  bool gone = !std::filesystem::exists("/dev/shm" + name);
  std::printf("ok=%d used=%llu capacity=%llu segment_removed=%d\n", rc == 0, static_cast<unsigned long long>(used),
              static_cast<unsigned long long>(6 * kChunkBytes), gone ? 1 : 0);
  return rc == 0 && gone && used <= 6 * kChunkBytes ? 0 : 1;
}
