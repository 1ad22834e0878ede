/// \file
/// Pipes: `pipe_stream`, one end of a pipe with the same read/write calls as a
/// socket.
///
/// A pipe_stream is what `process` hands out for a child's piped stdin, stdout
/// and stderr. It shares its implementation with tcp_stream and unix_stream
/// (detail::stream_socket), using read(2)/write(2) where those use recv/send:
/// each call tries the system call first and parks the microthread on EAGAIN
/// until the descriptor is ready, on every backend.
///
/// SIGPIPE: writing to a pipe whose reading end is closed (the child exited)
/// throws std::system_error(EPIPE); the process never receives SIGPIPE. Unlike
/// send(2), write(2) has no MSG_NOSIGNAL, so each write blocks SIGPIPE in the
/// calling thread only, and consumes the signal the failed write raised before
/// restoring the mask. The process's signal dispositions are never touched.
///
/// Every awaitable here is a suspension and cancellation point; what cancelling
/// each loses is what the same call on a tcp_stream loses
/// (docs/cancel-safety.md). Errors are std::system_error carrying errno and
/// naming the operation and the pipe (e.g. "stdin of cat (pid 1234)").
///
/// Thread safety: as net.hpp — one runtime, at most one reader and one writer.
#pragma once

#include <uthreads/net.hpp>

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace uthreads {

/// One end of a pipe (or any stream-like descriptor read with read(2) and
/// written with write(2): a FIFO, a terminal). Move-only; closes on
/// destruction. Closing the writing end is how the reader sees end of stream.
class pipe_stream {
public:
    pipe_stream() noexcept = default;
    /// Adopt `fd` (closed on destruction). It is made non-blocking and
    /// close-on-exec. O_NONBLOCK belongs to the open file, so it also affects
    /// every other holder of it: do not adopt a descriptor shared with a
    /// child process, and do not pass a pipe_stream's own descriptor to a
    /// child (`stdio::fd`), which would then see EAGAIN. `name` is used in
    /// messages. On failure `fd` is closed and std::system_error is thrown.
    explicit pipe_stream(int fd, std::string name = "pipe");
    pipe_stream(pipe_stream&&) noexcept = default;
    pipe_stream& operator=(pipe_stream&&) noexcept = default;

    /// Read at least one byte; 0 only at end of stream (every writer closed its
    /// end) or for an empty buffer. Cancellation point: loses nothing.
    task<std::size_t> read_some(std::span<std::byte> buf);
    task<std::size_t> read_some(std::span<char> buf);

    /// Fill `buf` completely; end of stream first throws uthreads::end_of_stream.
    /// Cancellation point: bytes already read into `buf` are consumed.
    task<void> read_exact(std::span<std::byte> buf);
    task<void> read_exact(std::span<char> buf);

    /// Read until end of stream and return everything. Cancellation point:
    /// the bytes read so far are consumed and lost with the call.
    task<std::string> read_to_end();

    /// Write every byte. A reader that is gone is std::system_error(EPIPE),
    /// never SIGPIPE. Cancellation point: a prefix of `data` of unknown length
    /// may have been written.
    task<void> write_all(std::span<const std::byte> data);
    task<void> write_all(std::string_view data);

    /// Close now (for a writing end: the reader sees end of stream once every
    /// other writer closed too); parked operations fail with EBADF. Idempotent.
    void close() noexcept { sock_.close(); }
    bool is_open() const noexcept { return sock_.io().is_open(); }
    int native_handle() const noexcept { return sock_.io().fd(); }
    /// The description used in messages ("stdout of ls (pid 42)", "pipe").
    const std::string& name() const noexcept { return sock_.peer(); }

private:
    friend class process;
    struct adopt_t {};
    // A descriptor already non-blocking and CLOEXEC (made by process::spawn).
    pipe_stream(adopt_t, int fd, std::string name) noexcept;
    detail::stream_socket sock_;
};

}  // namespace uthreads
