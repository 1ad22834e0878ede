/// \file
/// Unix domain stream sockets: `unix_listener`, `unix_stream`.
///
/// A name is a filesystem path, or an abstract name (Linux) when it starts with
/// '@': "@my-service" binds the abstract name "my-service" (sun_path[0] == 0),
/// which has no file and vanishes with the last socket. A name longer than
/// sun_path (107 bytes for a path) is std::invalid_argument.
///
/// Socket files: `unix_listener::bind` never removes an existing file unless
/// asked with `unix_bind_options::unlink_stale`, and then only a *stale* socket
/// (a socket file nobody listens on: connecting to it is refused); a live
/// socket or any other kind of file is left alone and bind throws EADDRINUSE.
/// A filesystem listener removes its socket file when it is closed or
/// destroyed, provided the path still names the very file it created (same
/// device and inode), so it never removes a successor's socket.
///
/// unix_stream has exactly tcp_stream's read/write surface and semantics (one
/// shared implementation); see net.hpp and docs/cancel-safety.md.
///
/// Thread safety: as net.hpp.
#pragma once

#include <uthreads/net.hpp>

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <sys/types.h>

namespace uthreads {

/// A connected Unix domain stream socket. Move-only; closes on destruction.
class unix_stream {
public:
    unix_stream() noexcept = default;
    explicit unix_stream(int fd, std::string peer = {}) noexcept;
    unix_stream(unix_stream&&) noexcept = default;
    unix_stream& operator=(unix_stream&&) noexcept = default;

    /// Connect to the listener at `path` ('@' prefix = abstract name). Throws
    /// std::system_error naming the path: ENOENT (no such file), ECONNREFUSED
    /// (nobody listening); std::invalid_argument for an empty or too long path.
    /// Cancellation point (loses nothing; the half-open socket is closed).
    static task<unix_stream> connect(std::string path);

    /// As tcp_stream::read_some: at least one byte, 0 only at end of stream or
    /// for an empty buffer. Cancellation point: loses nothing.
    task<std::size_t> read_some(std::span<std::byte> buf);
    task<std::size_t> read_some(std::span<char> buf);
    /// As tcp_stream::read_exact (end_of_stream if the stream ends first).
    /// Cancellation point: bytes already read into `buf` are consumed.
    task<void> read_exact(std::span<std::byte> buf);
    task<void> read_exact(std::span<char> buf);
    /// As tcp_stream::write_all. Cancellation point: may have written a prefix.
    task<void> write_all(std::span<const std::byte> data);
    task<void> write_all(std::string_view data);

    /// Shut down the sending direction (the peer reads end of stream).
    void shutdown_write();
    /// Close now; parked operations fail with EBADF. Idempotent.
    void close() noexcept { sock_.close(); }
    bool is_open() const noexcept { return sock_.io().is_open(); }
    int native_handle() const noexcept { return sock_.io().fd(); }
    /// The path (or "@name") this stream was connected to or accepted on.
    const std::string& peer() const noexcept { return sock_.peer(); }

private:
    detail::stream_socket sock_;
};

/// Options of unix_listener::bind.
struct unix_bind_options {
    /// Remove an existing socket file at the path if it is stale (connecting to
    /// it is refused). Never removes a live socket or a non-socket file.
    bool unlink_stale = false;
    int backlog = 1024;
};

/// A listening Unix domain stream socket. Move-only; closes on destruction,
/// removing its socket file (filesystem names only; see the file comment).
class unix_listener {
public:
    unix_listener() noexcept = default;
    unix_listener(unix_listener&& o) noexcept;
    unix_listener& operator=(unix_listener&& o) noexcept;
    ~unix_listener() { close(); }

    /// Bind and listen on `path` ('@' prefix = abstract name). Throws
    /// std::system_error naming the path (EADDRINUSE if the name is taken),
    /// std::invalid_argument for an empty or too long path or a non-positive
    /// backlog. Not a suspension point; may be called outside a runtime.
    static unix_listener bind(const std::string& path, unix_bind_options opts = {});

    /// Accept one connection (backs off on EMFILE as tcp_listener::accept).
    /// Cancellation point: loses nothing.
    task<unix_stream> accept();

    /// The name bound ("@name" for an abstract name).
    const std::string& path() const noexcept { return path_; }
    /// Close, then remove the socket file if it is still the one bound here.
    /// Idempotent.
    void close() noexcept;
    bool is_open() const noexcept { return io_.is_open(); }
    int native_handle() const noexcept { return io_.fd(); }

private:
    detail::io_object io_;
    std::string path_;
    bool owns_file_ = false;  // a filesystem socket file created by this bind
    dev_t dev_ = 0;
    ino_t ino_ = 0;
};

}  // namespace uthreads
