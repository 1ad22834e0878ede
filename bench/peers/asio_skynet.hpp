// Skynet written with Boost.Asio C++20 coroutines, shared by asio_bench (one
// thread) and asio_threads_bench (one io_context run by 1 and 2 threads): every
// node with size > 1 co_spawns its 10 children as independent, concurrently
// runnable coroutines and joins them with a ranged parallel group
// (wait_for_all), summing their results; leaves return their number.
#pragma once

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstdint>
#include <exception>
#include <utility>
#include <vector>

namespace bench::asio_peer {

inline boost::asio::awaitable<std::int64_t> skynet(std::int64_t num, std::int64_t size) {
    namespace asio = boost::asio;
    if (size == 1) co_return num;
    auto ex = co_await asio::this_coro::executor;
    const std::int64_t sub = size / 10;
    using op_t = decltype(asio::co_spawn(ex, skynet(0, 1), asio::deferred));
    std::vector<op_t> ops;
    ops.reserve(10);
    for (std::int64_t i = 0; i < 10; ++i)
        ops.push_back(asio::co_spawn(ex, skynet(num + i * sub, sub), asio::deferred));
    auto [order, excs, values] = co_await asio::experimental::make_parallel_group(std::move(ops))
                                     .async_wait(asio::experimental::wait_for_all(),
                                                 asio::use_awaitable);
    for (auto& e : excs)
        if (e) std::rethrow_exception(e);
    std::int64_t sum = 0;
    for (auto v : values) sum += v;
    co_return sum;
}

}  // namespace bench::asio_peer
