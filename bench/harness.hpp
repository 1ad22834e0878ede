// Measurement plumbing shared by bench/core_bench.cpp (uthreads) and
// bench/peers/asio_bench.cpp (Boost.Asio): both sides time, repeat, report and
// isolate the same way, so their ratio compares the frameworks and nothing else.
// Framework-free: each program supplies only how to run one measurement.
#pragma once

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <functional>
#include <string>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

namespace bench {

using Clock = std::chrono::steady_clock;

/// The program name in fatal messages; set by main.
inline const char* program = "bench";

inline double ms_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}
inline double ns_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
}

[[noreturn]] inline void die(const char* what) {
    std::fprintf(stderr, "%s: FATAL: %s\n", program, what);
    std::exit(1);
}

/// One line of the format scripts/run-bench reads.
// Dies unless a skynet run summed its leaves to `expected` (every workload and
// peer checks its result before its time counts).
inline void check_skynet_sum(std::int64_t sum, std::int64_t expected) {
    if (sum == expected) return;
    std::fprintf(stderr, "skynet: wrong sum %" PRId64 " (expected %" PRId64 ")\n", sum, expected);
    die("skynet verification failed");
}

inline void result(const char* name, double value, const char* unit) {
    std::printf("RESULT %s %.3f %s\n", name, value, unit);
    std::fflush(stdout);
}

/// Warm-up, then best of 3 runs of `measure` (each returns its own figure).
inline double best_of_3(const char* name, const std::function<double()>& measure) {
    double w = measure();
    std::fprintf(stderr, "  %-20s warm-up %.3f |", name, w);
    double best = 0;
    for (int i = 0; i < 3; ++i) {
        double v = measure();
        std::fprintf(stderr, " %.3f", v);
        best = (i == 0) ? v : std::min(best, v);
    }
    std::fprintf(stderr, "  -> best %.3f\n", best);
    return best;
}

/// Peak resident set of this process (VmHWM), in MB.
inline double vm_hwm_mb() {
    std::ifstream f("/proc/self/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("VmHWM:", 0) == 0) return std::strtod(line.c_str() + 6, nullptr) / 1024.0;
    return -1;
}

/// Runs `measure` (best of 3) in a forked child, so that the peak RSS reported
/// with it is that workload's alone. Call it before any runtime exists in this
/// process, so the child inherits no runtime state. Returns {figure, peak MB}.
inline std::pair<double, double> best_of_3_in_child(const char* name,
                                                    const std::function<double()>& measure) {
    std::fflush(stdout);
    std::fflush(stderr);
    int fds[2];
    if (pipe(fds) != 0) die("pipe");
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        close(fds[0]);
        double out[2];
        try {
            out[0] = best_of_3(name, measure);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "%s: %s: exception: %s\n", program, name, e.what());
            _exit(1);
        }
        out[1] = vm_hwm_mb();
        ssize_t n = write(fds[1], out, sizeof out);
        _exit(n == static_cast<ssize_t>(sizeof out) ? 0 : 1);
    }
    close(fds[1]);
    double in[2];
    size_t got = 0;
    while (got < sizeof in) {
        ssize_t n = read(fds[0], reinterpret_cast<char*>(in) + got, sizeof in - got);
        if (n <= 0) break;
        got += static_cast<size_t>(n);
    }
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (got != sizeof in || !WIFEXITED(status) || WEXITSTATUS(status) != 0) die("child failed");
    return {in[0], in[1]};
}

/// True if `run` returns normally in a forked child (a stack overflow there
/// cannot kill the benchmark).
inline bool succeeds_in_child(const std::function<void()>& run) {
    std::fflush(stdout);
    std::fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return false;
    if (pid == 0) {
        try {
            run();
        } catch (...) {
            _exit(1);
        }
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/// The deepest nesting in {max, max/2, ...} that `works` at; reports it when it
/// is less than `max` (`what` names the framework's nested-call type).
inline int usable_depth(int max, const char* what, const std::function<bool(int)>& works) {
    int depth = max;
    while (depth > 1000 && !works(depth)) {
        std::fprintf(stderr, "  nesting: depth %d failed (stack overflow?), halving\n", depth);
        depth /= 2;
    }
    if (depth != max)
        std::fprintf(stderr, "  nesting: NOTE: %s could not reach %d levels; using %d\n", what, max,
                     depth);
    return depth;
}

}  // namespace bench
