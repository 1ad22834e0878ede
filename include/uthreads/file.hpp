/// \file
/// Regular files that never block the loop: `file`.
///
///     ut::file f = co_await ut::file::open(path, O_WRONLY | O_CREAT | O_TRUNC);
///     co_await f.write("hello\n");
///     co_await f.fsync();
///
/// A regular file is always "ready" to the kernel's readiness interfaces, and a
/// read that misses the page cache blocks the calling thread. So file
/// operations do not wait for readiness: on a backend with completion
/// operations (io_uring) the kernel performs them (openat, read, write, fsync)
/// and reports back; on every other backend they run as ordinary system calls
/// on the runtime's blocking pool (see `to_thread`). The results are the same
/// on every backend.
///
/// Every operation is a suspension and cancellation point; what cancelling
/// each loses is documented on it and in docs/cancel-safety.md. On io_uring a
/// cancellation reaches the kernel (IORING_OP_ASYNC_CANCEL); the kernel may
/// already be running the operation, and the microthread then waits for it to
/// finish, so buffers stay valid for as long as the kernel uses them. On the
/// blocking pool a started system call cannot be interrupted: a cancelled
/// operation waits for it and returns its result, and the cancellation is
/// delivered at the next suspension point.
///
/// Errors are std::system_error carrying errno, naming the operation and the
/// path ("uthreads: open /nonexistent: No such file or directory"). Every
/// descriptor is CLOEXEC.
///
/// Meant for regular files. Pipes, FIFOs and terminals work, but a read that
/// waits for data holds a blocking-pool thread on backends without completion
/// operations; prefer a readiness-based type for them.
///
/// Thread safety: a file is used by microthreads of one runtime. Concurrent
/// `read_at`/`write_at` from several microthreads are fine; concurrent `read`
/// or `write` share the file position, as threads sharing a descriptor do.
#pragma once

#include <uthreads/task.hpp>

#include <cstddef>
#include <cstdint>
#include <fcntl.h>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace uthreads {

namespace detail {
struct file_state;
}

/// An open file. Move-only; closes on destruction. Operations in flight keep
/// the descriptor open until they finish.
class file {
public:
    file() noexcept = default;
    file(file&&) noexcept = default;
    file& operator=(file&&) noexcept = default;
    ~file() = default;

    /// Open `path` with open(2) `flags` (O_RDONLY, O_WRONLY | O_CREAT | O_TRUNC,
    /// O_RDWR | O_APPEND, ...; O_CLOEXEC is always added) and, for a file it
    /// creates, permission bits `perms` (before the umask). Throws
    /// std::system_error naming the path (ENOENT, EACCES, EEXIST, ...), and
    /// std::invalid_argument naming the argument for an empty path, a path with
    /// a NUL byte, or `perms` outside 07777. Cancellation point: loses nothing
    /// (an open that completed anyway returns the file, and the cancellation
    /// comes at the next suspension point; a file created by O_CREAT before the
    /// cancellation stays on disk).
    static task<file> open(std::string path, int flags = O_RDONLY, unsigned perms = 0666);

    /// Read at the file position and advance it; returns the number of bytes
    /// read, fewer than `buf.size()` near the end, 0 at end of file (or for an
    /// empty buffer). Cancellation point: a cancelled read took nothing if it
    /// throws `cancelled`; a read the kernel had already done is returned.
    task<std::size_t> read(std::span<std::byte> buf);
    task<std::size_t> read(std::span<char> buf);

    /// Read at `offset`, leaving the file position alone (pread). Returns as
    /// `read` does. Cancellation point: loses nothing.
    task<std::size_t> read_at(std::uint64_t offset, std::span<std::byte> buf);
    task<std::size_t> read_at(std::uint64_t offset, std::span<char> buf);

    /// Write all of `data` at the file position (at the end with O_APPEND) and
    /// advance it. Cancellation point: a cancelled write may have written a
    /// prefix of `data` of unknown length (the file position moved by as much).
    task<void> write(std::span<const std::byte> data);
    task<void> write(std::string_view data);

    /// Write all of `data` at `offset`, leaving the file position alone
    /// (pwrite; with O_APPEND, Linux appends anyway). Cancellation point: a
    /// cancelled write may have written a prefix of `data`.
    task<void> write_at(std::uint64_t offset, std::span<const std::byte> data);
    task<void> write_at(std::uint64_t offset, std::string_view data);

    /// Flush the file's data and metadata to the device (fsync(2)).
    /// Cancellation point: a cancelled fsync may or may not have flushed; call
    /// it again to be sure.
    task<void> fsync();
    /// Flush the data, and only the metadata needed to read it (fdatasync(2)).
    /// Cancellation as `fsync`.
    task<void> fdatasync();

    /// The file's current size in bytes (fstat). Not a suspension point.
    std::uint64_t size() const;

    /// Close the file. Operations still in flight finish first (they are not
    /// interrupted; cancel their microthreads for that) and the descriptor is
    /// closed when the last one ends. Later operations throw EBADF. Idempotent.
    void close() noexcept { st_.reset(); }
    bool is_open() const noexcept { return st_ != nullptr; }
    /// The descriptor, or -1 once closed.
    int native_handle() const noexcept;
    /// The path the file was opened with (for messages).
    const std::string& path() const noexcept { return path_; }

private:
    file(int fd, std::string path);

    std::shared_ptr<detail::file_state> st_;
    std::string path_;
};

}  // namespace uthreads
