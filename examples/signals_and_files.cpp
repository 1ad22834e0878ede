// signals_and_files — a file written and read back without blocking the loop,
// and a signal received as a value: `ut::file` and `ut::signal_set`.
//
// Runs on the default backend ($UTHREADS_BACKEND to choose another); exits 0
// when everything it checks holds.
#include <uthreads/uthreads.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <unistd.h>

namespace ut = uthreads;
using namespace std::chrono_literals;

ut::task<bool> files(const std::string& path) {
    {
        ut::file out = co_await ut::file::open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        co_await out.write("hello, file\n");
        co_await out.write_at(7, "FILE");  // overwrite "file" in place
        co_await out.fsync();
    }
    ut::file in = co_await ut::file::open(path);
    std::string text(64, '\0');
    text.resize(co_await in.read(std::span<char>(text)));
    std::printf("read back %zu bytes: %s", text.size(), text.c_str());
    try {
        (void)co_await ut::file::open(path + ".missing");
    } catch (const std::system_error& e) {
        std::printf("as expected: %s\n", e.what());
    }
    co_return text == "hello, FILE\n";
}

ut::task<bool> signals() {
    ut::signal_set sigs{SIGUSR1, SIGUSR2};  // SIGUSR1/2 are queued here from now on
    // A microthread waits; another part of the program (here: ourselves) signals.
    auto waiter = ut::spawn(sigs.wait(), "waiter");
    co_await ut::sleep_for(1ms);
    std::raise(SIGUSR1);
    int first = co_await waiter;
    // A signal that arrives while nobody waits is not lost.
    std::raise(SIGUSR2);
    int second = co_await sigs.wait();
    std::printf("received %s, then %s\n", strsignal(first), strsignal(second));
    // A wait that times out takes nothing.
    auto none = co_await ut::move_on_after(5ms, sigs.wait());
    bool ok = first == SIGUSR1 && second == SIGUSR2 && !none;
    co_return ok;
}  // the last set for SIGUSR1/2 is gone: their default dispositions are back

ut::task<bool> both(std::string path) {
    bool f = co_await files(path);
    bool s = co_await signals();
    bool ok = f && s;
    co_return ok;
}

int main() {
    std::string path = "/tmp/uthreads-signals-and-files-" + std::to_string(::getpid());
    bool ok = ut::run(both(path));
    ::unlink(path.c_str());
    std::printf("%s\n", ok ? "ok" : "FAILED");
    return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
