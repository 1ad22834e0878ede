// One end of a pipe. The byte-stream operations are detail::stream_socket's
// (stream_socket.cpp) with `stream_names::pipe` set: read(2)/write(2), readiness
// waits, and SIGPIPE blocked in the calling thread around each write.
#include <uthreads/pipe.hpp>

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <system_error>
#include <unistd.h>
#include <vector>

namespace uthreads {

namespace {
constexpr detail::stream_names pipe_names{"pipe_stream::read_some", "pipe_stream::write_all", true};
}  // namespace

pipe_stream::pipe_stream(int fd, std::string name) {
    int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0 ||
        ::fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
        int err = errno;
        ::close(fd);
        throw std::system_error(err, std::system_category(),
                                "uthreads: pipe_stream: making " + name + " non-blocking");
    }
    sock_ = detail::stream_socket(fd, std::move(name), &pipe_names);
}

pipe_stream::pipe_stream(adopt_t, int fd, std::string name) noexcept
    : sock_(fd, std::move(name), &pipe_names) {}

task<std::size_t> pipe_stream::read_some(std::span<std::byte> buf) {
    return sock_.read_some(buf);
}

task<std::size_t> pipe_stream::read_some(std::span<char> buf) {
    return sock_.read_some(std::as_writable_bytes(buf));
}

task<void> pipe_stream::read_exact(std::span<std::byte> buf) {
    return sock_.read_exact(buf);
}

task<void> pipe_stream::read_exact(std::span<char> buf) {
    return sock_.read_exact(std::as_writable_bytes(buf));
}

task<std::string> pipe_stream::read_to_end() {
    std::string out;
    // Read straight into the string's spare room: no extra copy. The room grows
    // with what has arrived, from 4 KiB (a short output costs no big
    // allocation) to a pipe's default capacity, 64 KiB, per read.
    for (;;) {
        std::size_t old = out.size();
        std::size_t chunk = std::clamp<std::size_t>(old, 4096, std::size_t{64} * 1024);
        out.resize(old + chunk);
        std::size_t n = co_await sock_.read_some(
            std::as_writable_bytes(std::span<char>(out.data() + old, chunk)));
        out.resize(old + n);
        if (n == 0) co_return out;
    }
}

task<void> pipe_stream::write_all(std::span<const std::byte> data) {
    return sock_.write_all(data);
}

task<void> pipe_stream::write_all(std::string_view data) {
    return sock_.write_all(std::as_bytes(std::span<const char>(data.data(), data.size())));
}

}  // namespace uthreads
