// Unix domain stream sockets. The byte-stream operations are
// detail::stream_socket's (stream_socket.cpp), shared with tcp_stream.
#include "../core/scheduler_internal.hpp"

#include <uthreads/unix.hpp>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <system_error>
#include <unistd.h>
#include <utility>

namespace uthreads {

namespace {

constexpr detail::stream_names unix_names{"unix_stream::read_some", "unix_stream::write_all"};

[[noreturn]] void throw_errno(int err, const std::string& what) {
    throw std::system_error(err, std::system_category(), "uthreads: " + what);
}

struct unix_address {
    sockaddr_un addr{};
    socklen_t len = 0;
    bool abstract = false;
};

// "@name" is the abstract name "name" (sun_path[0] == 0, length-delimited,
// not NUL-terminated); anything else is a filesystem path.
unix_address make_address(const std::string& path, const char* fn) {
    if (path.empty())
        throw std::invalid_argument(std::string("uthreads::") + fn + ": path is empty");
    unix_address a;
    a.addr.sun_family = AF_UNIX;
    a.abstract = path[0] == '@';
    // A filesystem path needs room for its terminating NUL.
    std::size_t room = sizeof a.addr.sun_path - (a.abstract ? 0 : 1);
    if (path.size() > room)
        throw std::invalid_argument(std::string("uthreads::") + fn + ": path \"" + path + "\" is " +
                                    std::to_string(path.size()) + " bytes, more than " +
                                    std::to_string(room));
    std::memcpy(a.addr.sun_path, path.data(), path.size());
    if (a.abstract) a.addr.sun_path[0] = '\0';
    a.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() +
                                   (a.abstract ? 0 : 1));
    return a;
}

int make_socket(const std::string& what) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw_errno(errno, what + ": socket");
    return fd;
}

// A socket file nobody listens on: a blocking connect attempt is refused.
bool is_stale_socket(const unix_address& a, const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return false;
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&a.addr), a.len);
    int err = errno;
    ::close(fd);
    return rc != 0 && err == ECONNREFUSED;
}

}  // namespace

// ---- unix_stream --------------------------------------------------------

unix_stream::unix_stream(int fd, std::string peer) noexcept
    : sock_(fd, std::move(peer), &unix_names) {}

task<unix_stream> unix_stream::connect(std::string path) {
    co_await detail::checkpoint("unix_stream::connect");
    unix_address a = make_address(path, "unix_stream::connect");
    unix_stream s(make_socket("connect to " + path), path);
    int fd = s.native_handle();
    auto backoff = std::chrono::milliseconds(1);
    while (::connect(fd, reinterpret_cast<const sockaddr*>(&a.addr), a.len) != 0) {
        int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN) {
            // The listener's backlog is full; Linux does not complete such a
            // connect later, so retry after a short, growing sleep.
            co_await sleep_for(backoff);
            backoff = std::min(backoff * 2, std::chrono::milliseconds(100));
            continue;
        }
        if (err != EINPROGRESS) throw_errno(err, "connect to " + path);
        co_await s.sock_.io().wait_ready(lowlevel::writable, "unix_stream::connect");
        int soerr = 0;
        socklen_t len = sizeof soerr;
        if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0) soerr = errno;
        if (soerr != 0) throw_errno(soerr, "connect to " + path);
        break;
    }
    co_return s;
}

task<std::size_t> unix_stream::read_some(std::span<std::byte> buf) {
    return sock_.read_some(buf);
}

task<std::size_t> unix_stream::read_some(std::span<char> buf) {
    return sock_.read_some(std::as_writable_bytes(buf));
}

task<void> unix_stream::read_exact(std::span<std::byte> buf) {
    return sock_.read_exact(buf);
}

task<void> unix_stream::read_exact(std::span<char> buf) {
    return sock_.read_exact(std::as_writable_bytes(buf));
}

task<void> unix_stream::write_all(std::span<const std::byte> data) {
    return sock_.write_all(data);
}

task<void> unix_stream::write_all(std::string_view data) {
    return sock_.write_all(std::as_bytes(std::span<const char>(data.data(), data.size())));
}

void unix_stream::shutdown_write() {
    sock_.shutdown_write();
}

// ---- unix_listener ------------------------------------------------------

unix_listener::unix_listener(unix_listener&& o) noexcept
    : io_(std::move(o.io_))
    , path_(std::move(o.path_))
    , owns_file_(std::exchange(o.owns_file_, false))
    , dev_(o.dev_)
    , ino_(o.ino_) {}

unix_listener& unix_listener::operator=(unix_listener&& o) noexcept {
    if (this != &o) {
        close();
        io_ = std::move(o.io_);
        path_ = std::move(o.path_);
        owns_file_ = std::exchange(o.owns_file_, false);
        dev_ = o.dev_;
        ino_ = o.ino_;
    }
    return *this;
}

unix_listener unix_listener::bind(const std::string& path, unix_bind_options opts) {
    if (opts.backlog <= 0)
        throw std::invalid_argument(
            "uthreads::unix_listener::bind: backlog must be positive (got " +
            std::to_string(opts.backlog) + ")");
    unix_address a = make_address(path, "unix_listener::bind");
    unix_listener l;
    l.io_ = detail::io_object(make_socket("bind " + path));
    l.path_ = path;
    auto do_bind = [&] {
        return ::bind(l.io_.fd(), reinterpret_cast<const sockaddr*>(&a.addr), a.len);
    };
    if (do_bind() != 0) {
        int err = errno;
        if (!(err == EADDRINUSE && opts.unlink_stale && !a.abstract && is_stale_socket(a, path)))
            throw_errno(err, "bind " + path);
        ::unlink(path.c_str());
        if (do_bind() != 0) throw_errno(errno, "bind " + path);
    }
    if (!a.abstract) {
        struct stat st {};
        if (::lstat(path.c_str(), &st) == 0) {
            l.owns_file_ = true;
            l.dev_ = st.st_dev;
            l.ino_ = st.st_ino;
        }
    }
    if (::listen(l.io_.fd(), opts.backlog) != 0) throw_errno(errno, "listen on " + path);
    return l;
}

void unix_listener::close() noexcept {
    io_.close();
    if (owns_file_) {
        owns_file_ = false;
        // Remove the file only if it is still ours: another listener may have
        // replaced it (unlink_stale) since.
        struct stat st {};
        if (::lstat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_)
            ::unlink(path_.c_str());
    }
}

task<unix_stream> unix_listener::accept() {
    int fd = co_await detail::accept_socket(io_, path_, "unix_listener::accept");
    co_return unix_stream(fd, path_);
}

}  // namespace uthreads
