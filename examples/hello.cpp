// hello — uthreads in one screen: spawn, a channel, a nested call, a timeout.
#include <uthreads/uthreads.hpp>

#include <chrono>
#include <cstdio>

namespace ut = uthreads;
using namespace std::chrono_literals;

// A nested asynchronous call: `co_await square(x)` returns its value like a function.
ut::task<int> square(int x) {
    co_await ut::sleep_for(1ms);
    co_return x * x;
}

ut::task<int> slow_answer() {
    co_await ut::sleep_for(1h);
    co_return 42;
}

ut::task<> producer(ut::channel<int>& out) {
    for (int i = 1; i <= 5; ++i) co_await out.send(co_await square(i));
    out.close();
}

ut::task<int> hello() {
    std::printf("hello from a microthread on the \"%s\" backend\n", ut::current_backend().data());
    ut::channel<int> squares(0);  // rendezvous
    auto p = ut::spawn(producer(squares), "producer");  // branch execution
    int sum = 0;
    while (auto v = co_await squares.recv()) sum += *v;  // nullopt once closed
    co_await p;
    try {
        co_await ut::with_timeout(10ms, slow_answer());
    } catch (const ut::timeout_error& e) {
        std::printf("with_timeout: %s\n", e.what());
    }
    co_return sum;
}

int main() { std::printf("1 + 4 + 9 + 16 + 25 = %d\n", ut::run(hello())); }
