// file: open/read/write/fsync as completion operations on a backend that has
// them (io_uring), and as system calls on the blocking pool everywhere else.
//
// Unlike sockets, nothing is tried first: a regular file never says EAGAIN, it
// blocks the caller instead, so the only safe first attempt is the one made
// somewhere else (the kernel's io-wq, or a pool thread).
//
// Lifetime: the descriptor lives in a file_state shared by the file object and
// every operation in flight. An operation's frame holds its own reference, so
// closing, moving or destroying the `file` while a microthread is parked in an
// operation never closes the descriptor under the kernel or a pool thread (and
// never lets its number be reused while they still use it).
#include "../core/scheduler_internal.hpp"
#include "completion.hpp"

#include <uthreads/file.hpp>
#include <uthreads/to_thread.hpp>

#include <cerrno>
#include <exception>
#include <limits>
#include <stdexcept>
#include <string>
#include <sys/stat.h>
#include <sys/types.h>
#include <system_error>
#include <type_traits>
#include <unistd.h>

namespace uthreads {

namespace detail {

struct file_state {
    int fd = -1;
    std::string path;
    file_state(int f, std::string p) noexcept
        : fd(f)
        , path(std::move(p)) {}
    file_state(const file_state&) = delete;
    file_state& operator=(const file_state&) = delete;
    ~file_state() { ::close(fd); }
};

namespace {

using op_kind = lowlevel::completion_op::kind;
constexpr std::uint64_t at_position = lowlevel::completion_op::current_position;

std::system_error file_error(int err, const char* what, const std::string& path,
                             std::uint64_t offset = at_position) {
    std::string msg = std::string("uthreads: ") + what + " " + path;
    if (offset != at_position) msg += " (offset " + std::to_string(offset) + ")";
    return std::system_error(err, std::system_category(), msg);
}

[[noreturn]] void throw_file_error(int err, const char* what, const std::string& path,
                                   std::uint64_t offset = at_position) {
    throw file_error(err, what, path, offset);
}

std::string closed_path(const std::string& path) {
    return path.empty() ? std::string("(no file)") : path + " (closed)";
}

bool completions_available(const char* what) {
    return current_scheduler(what).backend().supports_completions();
}

/// Perform `op` as a completion operation and return its result (>= 0 or
/// -errno). Throws `cancelled` if the kernel cancelled it.
task<int> run_completion(lowlevel::completion_op op, const char* what) {
    completion_wait w;
    static_cast<lowlevel::completion_op&>(w) = op;
    w.s = &current_scheduler(what);
    w.what = what;
    co_return co_await w;
}

/// One read or write of at most `len` bytes at `offset` (or at the file
/// position): >= 0 bytes transferred, or -errno.
task<long> transfer(const file_state& st, op_kind kind, void* buf, std::size_t len,
                    std::uint64_t offset, const char* what) {
    if (completions_available(what)) {
        lowlevel::completion_op op;
        op.op = kind;
        op.fd = st.fd;
        op.buf = buf;
        op.len = len;
        op.offset = offset;
        co_return co_await run_completion(op, what);
    }
    int fd = st.fd;
    co_return co_await to_thread([=]() noexcept -> long {
        for (;;) {
            ssize_t n;
            if (kind == op_kind::read)
                n = offset == at_position ? ::read(fd, buf, len)
                                          : ::pread(fd, buf, len, static_cast<off_t>(offset));
            else
                n = offset == at_position ? ::write(fd, buf, len)
                                          : ::pwrite(fd, buf, len, static_cast<off_t>(offset));
            if (n >= 0) return n;
            if (errno != EINTR) return -errno;
        }
    });
}

task<std::size_t> read_impl(std::shared_ptr<file_state> st, std::span<std::byte> buf,
                            std::uint64_t offset, const char* what) {
    co_await checkpoint(what);
    if (buf.empty()) co_return 0;
    for (;;) {
        long r = co_await transfer(*st, op_kind::read, buf.data(), buf.size(), offset, what);
        if (r >= 0) co_return static_cast<std::size_t>(r);
        if (r != -EINTR) throw_file_error(static_cast<int>(-r), what, st->path, offset);
    }
}

task<void> write_impl(std::shared_ptr<file_state> st, std::span<const std::byte> data,
                      std::uint64_t offset, const char* what) {
    co_await checkpoint(what);
    std::size_t done = 0;
    while (done < data.size()) {
        // Between pieces of a long write too: a cancelled write stops at a
        // piece boundary (documented as "may have written a prefix").
        if (done > 0) co_await checkpoint(what);
        std::uint64_t at = offset == at_position ? at_position : offset + done;
        long r = co_await transfer(*st, op_kind::write, const_cast<std::byte*>(data.data() + done),
                                   data.size() - done, at, what);
        if (r > 0) {
            done += static_cast<std::size_t>(r);
        } else if (r == 0) {
            // write(2) of a nonzero length that writes nothing would loop forever.
            throw_file_error(EIO, what, st->path, offset);
        } else if (r != -EINTR) {
            throw_file_error(static_cast<int>(-r), what, st->path, offset);
        }
    }
}

task<void> sync_impl(std::shared_ptr<file_state> st, bool data_only, const char* what) {
    co_await checkpoint(what);
    int r;
    if (completions_available(what)) {
        lowlevel::completion_op op;
        op.op = op_kind::fsync;
        op.fd = st->fd;
        op.flags = data_only ? lowlevel::completion_op::fsync_datasync : 0;
        r = co_await run_completion(op, what);
    } else {
        int fd = st->fd;
        r = co_await to_thread([fd, data_only]() noexcept {
            int rc;
            do {
                rc = data_only ? ::fdatasync(fd) : ::fsync(fd);
            } while (rc != 0 && errno == EINTR);
            return rc == 0 ? 0 : -errno;
        });
    }
    if (r < 0) throw_file_error(-r, what, st->path);
}

// An operation that fails before it starts (a closed file, a bad argument):
// the error comes out of co_await, as the operation's own errors do.
template <class T>
task<T> failed(std::exception_ptr e) {
    std::rethrow_exception(e);
    co_return T();
}

template <>
task<void> failed<void>(std::exception_ptr e) {
    std::rethrow_exception(e);
    co_return;
}

template <class T>
task<T> closed_file(const char* what, const std::string& path) {
    return failed<T>(std::make_exception_ptr(file_error(EBADF, what, closed_path(path))));
}

// Offsets are off_t: beyond its range pread/pwrite fail, and UINT64_MAX would
// be taken for "at the file position".
std::exception_ptr offset_error(std::uint64_t offset, std::size_t len, const char* what) {
    constexpr auto max = static_cast<std::uint64_t>(std::numeric_limits<off_t>::max());
    if (offset <= max && len <= max - offset) return nullptr;
    return std::make_exception_ptr(std::invalid_argument(
        std::string("uthreads: file::") + what + ": offset (" + std::to_string(offset) +
        ") plus the length is beyond the largest file offset"));
}

std::span<std::byte> bytes(std::span<char> s) noexcept {
    return {reinterpret_cast<std::byte*>(s.data()), s.size()};
}

std::span<const std::byte> bytes(std::string_view s) noexcept {
    return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

}  // namespace
}  // namespace detail

file::file(int fd, std::string path)
    : st_(std::make_shared<detail::file_state>(fd, path))
    , path_(std::move(path)) {}

task<file> file::open(std::string path, int flags, unsigned perms) {
    if (path.empty()) throw std::invalid_argument("uthreads: file::open: path is empty");
    if (path.find('\0') != std::string::npos)
        throw std::invalid_argument("uthreads: file::open: path contains a NUL byte");
    if (perms & ~07777u)
        throw std::invalid_argument("uthreads: file::open: perms (" + std::to_string(perms) +
                                    ") has bits outside 07777");
    co_await detail::checkpoint("file::open");
    flags |= O_CLOEXEC;
    int fd;
    if (detail::completions_available("file::open")) {
        lowlevel::completion_op op;
        op.op = lowlevel::completion_op::kind::openat;
        op.addr = path.data();  // NUL-terminated; lives in this frame until completion
        op.flags = flags;
        op.mode = perms;
        fd = co_await detail::run_completion(op, "file::open");
    } else {
        fd = co_await to_thread([&path, flags, perms]() noexcept {
            int rc;
            do {
                rc = ::open(path.c_str(), flags, static_cast<mode_t>(perms));
            } while (rc < 0 && errno == EINTR);
            return rc >= 0 ? rc : -errno;
        });
    }
    if (fd < 0) detail::throw_file_error(-fd, "open", path);
    co_return file(fd, std::move(path));
}

task<std::size_t> file::read(std::span<std::byte> buf) {
    if (!st_) return detail::closed_file<std::size_t>("read", path_);
    return detail::read_impl(st_, buf, detail::at_position, "read");
}

task<std::size_t> file::read(std::span<char> buf) {
    return read(detail::bytes(buf));
}

task<std::size_t> file::read_at(std::uint64_t offset, std::span<std::byte> buf) {
    if (!st_) return detail::closed_file<std::size_t>("read_at", path_);
    if (auto e = detail::offset_error(offset, buf.size(), "read_at"))
        return detail::failed<std::size_t>(e);
    return detail::read_impl(st_, buf, offset, "read_at");
}

task<std::size_t> file::read_at(std::uint64_t offset, std::span<char> buf) {
    return read_at(offset, detail::bytes(buf));
}

task<void> file::write(std::span<const std::byte> data) {
    if (!st_) return detail::closed_file<void>("write", path_);
    return detail::write_impl(st_, data, detail::at_position, "write");
}

task<void> file::write(std::string_view data) {
    return write(detail::bytes(data));
}

task<void> file::write_at(std::uint64_t offset, std::span<const std::byte> data) {
    if (!st_) return detail::closed_file<void>("write_at", path_);
    if (auto e = detail::offset_error(offset, data.size(), "write_at"))
        return detail::failed<void>(e);
    return detail::write_impl(st_, data, offset, "write_at");
}

task<void> file::write_at(std::uint64_t offset, std::string_view data) {
    return write_at(offset, detail::bytes(data));
}

task<void> file::fsync() {
    if (!st_) return detail::closed_file<void>("fsync", path_);
    return detail::sync_impl(st_, false, "fsync");
}

task<void> file::fdatasync() {
    if (!st_) return detail::closed_file<void>("fdatasync", path_);
    return detail::sync_impl(st_, true, "fdatasync");
}

std::uint64_t file::size() const {
    if (!st_) detail::throw_file_error(EBADF, "size", detail::closed_path(path_));
    struct stat sb {};
    if (::fstat(st_->fd, &sb) != 0) detail::throw_file_error(errno, "size", path_);
    return static_cast<std::uint64_t>(sb.st_size);
}

int file::native_handle() const noexcept {
    return st_ ? st_->fd : -1;
}

}  // namespace uthreads
