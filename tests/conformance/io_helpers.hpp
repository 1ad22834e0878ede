// Helpers shared by the I/O conformance tests: scratch directories, byte
// patterns, and a connected pair of TCP streams.
#pragma once

#include "conformance.hpp"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <unistd.h>
#include <utility>
#include <vector>

namespace uthreads_conformance {

/// A fresh directory under the system's temporary directory, named after
/// `prefix`, this process and a counter; removed with everything in it.
struct temp_dir {
    std::filesystem::path path;
    explicit temp_dir(const std::string& prefix) {
        static int counter = 0;
        path = std::filesystem::temp_directory_path() /
               (prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(++counter));
        std::filesystem::create_directories(path);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string file(const char* name) const { return (path / name).string(); }
};

/// `n` pseudo-random bytes, the same for the same `seed`.
inline std::vector<std::byte> pattern(std::size_t n, unsigned seed) {
    std::vector<std::byte> v(n);
    std::uint32_t x = seed * 2654435761u + 1;
    for (auto& b : v) {
        x = x * 1664525u + 1013904223u;
        b = static_cast<std::byte>(x >> 24);
    }
    return v;
}

/// Accepts one connection on `l` and connects to it; returns {server side, client side}.
inline ut::task<std::pair<ut::tcp_stream, ut::tcp_stream>> connected_pair(ut::tcp_listener& l) {
    auto client = ut::spawn(ut::tcp_stream::connect("127.0.0.1", l.port()), "connect");
    ut::tcp_stream server = co_await l.accept();
    ut::tcp_stream c = co_await client;
    co_return std::pair<ut::tcp_stream, ut::tcp_stream>(std::move(server), std::move(c));
}

/// Parks a read_some on `server`, cancels it, then sends "after" from `client`
/// and reads it back on `server`. Returns whether the read ended cancelled and
/// what arrived: a cancelled read must consume nothing.
template <class Stream>
ut::task<std::pair<bool, std::string>> cancel_parked_read_then_exchange(Stream& server,
                                                                        Stream& client) {
    ut::event started;
    auto reader = ut::spawn([](Stream& s, ut::event& st) -> ut::task<> {
        char buf[16];
        st.set();
        co_await s.read_some(std::span<char>(buf));
        ADD_FAILURE() << "read_some returned although nothing was sent";
    }(server, started));
    co_await started.wait();
    co_await ut::yield_now();
    reader.cancel();
    bool cancelled = co_await join_expect_cancelled(reader);
    co_await client.write_all(std::string_view("after"));
    std::string buf(5, '\0');
    co_await server.read_exact(std::span<char>(buf));
    co_return std::pair<bool, std::string>(cancelled, buf);
}

}  // namespace uthreads_conformance
