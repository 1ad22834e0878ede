// hello — uthreads in one screen: spawn, a channel, a nested call, a timeout.
#include <uthreads/uthreads.hpp>

#include <chrono>
#include <cstdio>
#include <string>

namespace ut = uthreads;
using namespace std::chrono_literals;

ut::task<int> square(int x) {  // a nested call: `co_await square(x)` returns like a function
    co_await ut::sleep_for(1ms);
    co_return (x * x);
}

ut::task<> producer(ut::channel<int>& out) {
    for (int i = 1; i <= 5; ++i) co_await out.send(co_await square(i));
    out.close();
}

ut::task<int> hello() {
    std::printf("hello from the %s backend\n", std::string(ut::current_backend()).c_str());
    ut::channel<int> squares(0);                        // rendezvous
    auto p = ut::spawn(producer(squares), "producer");  // branch execution
    int sum = 0;
    while (auto v = co_await squares.recv()) sum += *v;  // nullopt once closed
    co_await p;
    try {
        co_await ut::with_timeout(10ms, square(sum));  // a 1 ms call in a 10 ms budget: fine
        co_await ut::with_timeout(10ms, ut::sleep_for(1h));
    } catch (const ut::timeout_error& e) {
        std::printf("with_timeout: %s\n", e.what());
    }
    co_return sum;
}

int main() {
    std::printf("1 + 4 + 9 + 16 + 25 = %d\n", ut::run(hello()));
}
