// subprocess_pipeline — subprocesses as microthreads: several commands run at
// once, and the output of one is piped into another through a microthread
// (the equivalent of `seq 1 2000 | grep 7 | wc -l`, with the parent in the
// middle of each `|`). Checks its own results; exits non-zero on a mismatch.
#include <uthreads/uthreads.hpp>

#include <cstdio>
#include <span>
#include <string>
#include <vector>

namespace ut = uthreads;
using namespace std::chrono_literals;

// Copy everything from `from` to `to`, then close `to` (end of stream for the
// next command), as the shell's `|` does.
ut::task<> pump(ut::pipe_stream from, ut::pipe_stream to) {
    std::vector<char> buf(std::size_t{64} * 1024);
    for (;;) {
        std::size_t n = co_await from.read_some(std::span<char>(buf));
        if (n == 0) break;
        co_await to.write_all(std::string_view(buf.data(), n));
    }
    to.close();
}

// seq 1 <n> | grep 7 | wc -l, each command its own process, the data moved by
// two pump microthreads.
ut::task<int> count_sevens(int n) {
    auto piped = [](ut::stdio in, ut::stdio out) {
        return ut::process_options{.in = in, .out = out, .err = ut::stdio::inherit()};
    };
    ut::process seq = ut::process::spawn({"seq", "1", std::to_string(n)},
                                         piped(ut::stdio::null(), ut::stdio::pipe()));
    ut::process grep =
        ut::process::spawn({"grep", "7"}, piped(ut::stdio::pipe(), ut::stdio::pipe()));
    ut::process wc = ut::process::spawn({"wc", "-l"}, piped(ut::stdio::pipe(), ut::stdio::pipe()));
    std::string counted;
    co_await ut::with_nursery([&](ut::nursery& nursery) -> ut::task<> {
        nursery.spawn(pump(std::move(seq.out()), std::move(grep.in())), "seq | grep");
        nursery.spawn(pump(std::move(grep.out()), std::move(wc.in())), "grep | wc");
        counted = co_await wc.out().read_to_end();
    });
    for (ut::process* p : {&seq, &grep, &wc}) {
        ut::exit_status st = co_await p->wait();
        if (!st.success()) std::printf("%s exited with %d\n", p->program().c_str(), st.exit_code);
    }
    co_return std::stoi(counted);
}

ut::task<int> pipeline() {
    int failures = 0;
    // Independent commands, concurrently: all three run at the same time.
    auto [uname, sum, words] = co_await ut::when_all(
        ut::run_process({"uname", "-s"}),
        ut::run_process({"sh", "-c", "expr \"$(cat)\" + 1"}, "41"),
        ut::run_process({"wc", "-w"}, "the quick brown fox jumps over the lazy dog"));
    std::printf("uname -s            -> %s", uname.out.c_str());
    std::printf("expr 41 + 1         -> %s", sum.out.c_str());
    std::printf("wc -w               -> %s", words.out.c_str());
    if (sum.out != "42\n" || std::stoi(words.out) != 9) ++failures;

    // A pipeline through microthreads; two of them at once.
    auto [a, b] = co_await ut::when_all(count_sevens(2000), count_sevens(100));
    std::printf("seq 1 2000 | grep 7 | wc -l -> %d\n", a);
    std::printf("seq 1 100  | grep 7 | wc -l -> %d\n", b);
    if (a != 542 || b != 19) ++failures;

    // A command that takes too long is killed and reaped.
    try {
        co_await ut::run_process({"sleep", "10"}, "", {}, 100ms);
        ++failures;
    } catch (const ut::timeout_error& e) {
        std::printf("timeout             -> %s\n", e.what());
    }

    // Exit status and signals.
    ut::process_result killed = co_await ut::run_process({"sh", "-c", "kill -TERM $$"});
    std::printf("kill -TERM $$       -> exit_code %d, signal %d\n", killed.exit_code,
                killed.signal);
    if (killed.signal != 15) ++failures;
    co_return failures;
}

int main() {
    int failures = ut::run(pipeline());
    if (failures) std::printf("%d check(s) failed\n", failures);
    return failures == 0 ? 0 : 1;
}
