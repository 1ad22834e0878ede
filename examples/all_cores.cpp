// all_cores — one program, every core: the same microthread code run with
// `options.threads = 1` and with one worker per core (`threads = 0`).
//
// Three things a multi-threaded runtime has to get right, each checked:
//   1. fork-join: count the primes below 1,000,000 by splitting the range in
//      halves down to 20,000 numbers, each half a spawned microthread (idle
//      workers steal the halves that have not started yet);
//   2. message passing between workers: 4 producers and 4 consumers move
//      100,000 numbers through one channel; the sum proves none was lost or
//      received twice;
//   3. a shared counter under a `ut::mutex`, incremented from microthreads
//      that run on different workers.
//
// Prints the time of each with 1 worker and with all cores. Exits non-zero if a
// result is wrong. `all_cores [backend]` picks the backend (default: the
// platform's, or $UTHREADS_BACKEND).
#include <uthreads/uthreads.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>

namespace ut = uthreads;

namespace {

bool is_prime(std::int64_t n) {
    if (n < 2) return false;
    for (std::int64_t d = 2; d * d <= n; ++d)
        if (n % d == 0) return false;
    return true;
}

// Primes in [lo, hi): split in two until the range is small, the left half a
// spawned microthread, the right half a nested call; then join.
ut::task<std::int64_t> count_primes(std::int64_t lo, std::int64_t hi) {
    if (hi - lo <= 20'000) {
        std::int64_t n = 0;
        for (std::int64_t i = lo; i < hi; ++i) n += is_prime(i) ? 1 : 0;
        co_return n;
    }
    std::int64_t mid = lo + (hi - lo) / 2;
    auto left = ut::spawn(count_primes(lo, mid));
    std::int64_t right = co_await count_primes(mid, hi);
    co_return right + co_await left;
}

constexpr std::int64_t kLimit = 1'000'000;
constexpr std::int64_t kPrimesBelowLimit = 78'498;

// 4 producers send 1..kValues between them; 4 consumers add up what they get,
// each into its own slot.
constexpr std::int64_t kValues = 100'000;

ut::task<> produce(ut::channel<std::int64_t>& ch, std::int64_t first) {
    for (std::int64_t v = first; v <= kValues; v += 4) co_await ch.send(v);
}

ut::task<> consume(ut::channel<std::int64_t>& ch, std::int64_t& sum) {
    while (auto v = co_await ch.recv()) sum += *v;
}

ut::task<std::int64_t> channel_sum() {
    ut::channel<std::int64_t> ch(64);
    std::int64_t sums[4] = {};
    co_await ut::with_nursery([&](ut::nursery& consumers) -> ut::task<> {
        for (std::int64_t& sum : sums) consumers.spawn(consume(ch, sum));
        co_await ut::with_nursery([&](ut::nursery& producers) -> ut::task<> {
            for (std::int64_t p = 0; p < 4; ++p) producers.spawn(produce(ch, p + 1));
            co_return;
        });
        ch.close();  // every producer is done: the consumers drain and stop
    });
    co_return sums[0] + sums[1] + sums[2] + sums[3];
}

// 8 microthreads each add 10,000 to one counter under a ut::mutex.
ut::task<> add_under_lock(ut::mutex& m, std::int64_t& counter) {
    for (int i = 0; i < 10'000; ++i) {
        {
            auto lock = co_await m.lock();
            ++counter;
        }
        if (i % 64 == 0) co_await ut::yield_now();  // let the others interleave
    }
}

ut::task<std::int64_t> locked_counter() {
    ut::mutex m;
    std::int64_t counter = 0;
    co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
        for (int i = 0; i < 8; ++i) n.spawn(add_under_lock(m, counter));
        co_return;
    });
    co_return counter;
}

struct results {
    std::int64_t primes, sum, counter;
    double primes_ms, sum_ms, counter_ms;
};

template <class F>
ut::task<std::int64_t> timed(F make, double& ms) {
    auto t0 = std::chrono::steady_clock::now();
    std::int64_t v = co_await make();
    ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    co_return v;
}

ut::task<results> all_three() {
    results r{};
    r.primes = co_await timed([] { return count_primes(0, kLimit); }, r.primes_ms);
    r.sum = co_await timed(channel_sum, r.sum_ms);
    r.counter = co_await timed(locked_counter, r.counter_ms);
    co_return r;
}

bool check(const char* what, std::int64_t got, std::int64_t want) {
    if (got == want) return true;
    std::fprintf(stderr, "all_cores: %s: got %lld, expected %lld\n", what,
                 static_cast<long long>(got), static_cast<long long>(want));
    return false;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string backend = argc > 1 ? argv[1] : "";
    const unsigned cores = std::thread::hardware_concurrency();
    bool ok = true;
    for (unsigned threads : {1u, 0u}) {
        results r = ut::run(all_three(), ut::options{.backend = backend, .threads = threads});
        std::printf("%u worker(s): primes below %lld: %lld (%.1f ms) | channel sum %lld (%.1f ms) "
                    "| mutex counter %lld (%.1f ms)\n",
                    threads == 0 ? cores : threads, static_cast<long long>(kLimit),
                    static_cast<long long>(r.primes), r.primes_ms,
                    static_cast<long long>(r.sum), r.sum_ms, static_cast<long long>(r.counter),
                    r.counter_ms);
        ok = check("primes", r.primes, kPrimesBelowLimit) && ok;
        ok = check("channel sum", r.sum, kValues * (kValues + 1) / 2) && ok;
        ok = check("mutex counter", r.counter, 8 * 10'000) && ok;
    }
    return ok ? 0 : 1;
}
