/// \file
/// `buffered_reader<Stream>`: line- and delimiter-oriented reads over any
/// stream with `task<std::size_t> read_some(std::span<char>)` (tcp_stream,
/// unix_stream, or your own).
///
/// Records:
/// - `read_line(max)` ends a line at "\n"; a "\r" just before it is dropped
///   too, so "\r\n" and "\n" both end a line, while a lone "\r" is data. The
///   terminator is never part of the result.
/// - `read_until(delim, max)` returns the bytes before `delim`; the delimiter
///   is consumed and not returned.
/// - `max` bounds the record without its terminator. A longer record throws
///   std::length_error naming the limit, and consumes nothing: the bytes stay
///   buffered (drain them with read_some, or close the stream). The buffer
///   never holds more than max + the terminator + one read chunk.
/// - End of stream: nullopt if no byte is buffered (a clean end). End of stream
///   in mid-record returns the unterminated tail as the last record (as
///   std::getline does; no "\r" is stripped from it); the next call returns
///   nullopt.
///
/// Cancellation: every read is a cancellation point; cancelling read_line /
/// read_until / read_some loses nothing (bytes read from the stream stay in
/// the reader's buffer for the next call). Cancelling read_exact loses what
/// was already copied into the caller's buffer, as Stream::read_exact does.
///
/// The reader refers to the stream, which must outlive it; one microthread
/// reads at a time. Reading the stream directly while bytes are buffered here
/// skips those bytes.
#pragma once

#include <uthreads/net.hpp>
#include <uthreads/task.hpp>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <limits>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace uthreads {

template <class Stream>
class buffered_reader {
public:
    /// `chunk` is how much one read from the stream asks for.
    explicit buffered_reader(Stream& s, std::size_t chunk = 16 * 1024)
        : s_(&s)
        , chunk_(chunk ? chunk : 1) {}

    /// The next line without its terminator, nullopt at a clean end of stream.
    /// Throws std::length_error if the line is longer than `max` bytes.
    task<std::optional<std::string>> read_line(std::size_t max) {
        // Room for a "\r" that may turn out to belong to the terminator.
        std::optional<std::size_t> pos = co_await find("\n", max + 1, "read_line", max);
        if (!pos) co_return take_tail(max, "read_line");
        std::size_t len = *pos;
        std::size_t content = len > 0 && buf_[begin_ + len - 1] == '\r' ? len - 1 : len;
        if (content > max) throw_too_long("read_line", max);
        std::string line(buf_.data() + begin_, content);
        begin_ += len + 1;
        co_return line;
    }

    /// The bytes before the next `delim` (which is consumed), nullopt at a clean
    /// end of stream. Throws std::length_error if they are more than `max`,
    /// std::invalid_argument if `delim` is empty.
    task<std::optional<std::string>> read_until(std::string_view delim, std::size_t max) {
        if (delim.empty())
            throw std::invalid_argument("uthreads::buffered_reader::read_until: delim is empty");
        std::string d(delim);  // the caller's view need not outlive a suspension
        std::optional<std::size_t> pos = co_await find(d, max, "read_until", max);
        if (!pos) co_return take_tail(max, "read_until");
        std::string rec(buf_.data() + begin_, *pos);
        begin_ += *pos + d.size();
        co_return rec;
    }

    /// Fill `buf`: buffered bytes first, then the stream. Throws end_of_stream
    /// if the stream ends before.
    task<void> read_exact(std::span<char> buf) {
        std::size_t got = copy_out(buf);
        while (got < buf.size()) {
            std::size_t n = co_await s_->read_some(buf.subspan(got));
            if (n == 0) throw end_of_stream(got, buf.size());
            got += n;
        }
    }
    task<void> read_exact(std::span<std::byte> buf) {
        return read_exact(std::span<char>(reinterpret_cast<char*>(buf.data()), buf.size()));
    }
    /// Exactly `n` bytes as a string.
    task<std::string> read_exact(std::size_t n) {
        std::string out(n, '\0');
        co_await read_exact(std::span<char>(out));
        co_return out;
    }

    /// Buffered bytes if there are any (without touching the stream), else one
    /// read from the stream. 0 only at end of stream or for an empty buffer.
    task<std::size_t> read_some(std::span<char> buf) {
        if (buf.empty()) co_return 0;
        if (begin_ != end_) co_return copy_out(buf);
        co_return co_await s_->read_some(buf);
    }
    task<std::size_t> read_some(std::span<std::byte> buf) {
        return read_some(std::span<char>(reinterpret_cast<char*>(buf.data()), buf.size()));
    }

    /// Bytes buffered and not yet returned.
    std::size_t buffered() const noexcept { return end_ - begin_; }
    Stream& stream() const noexcept { return *s_; }

private:
    // Offset of `delim` from begin_, reading more until it is found within the
    // first limit + delim.size() bytes; nullopt at end of stream. Throws
    // length_error (consuming nothing) when it cannot be within the limit.
    task<std::optional<std::size_t>> find(const std::string& delim, std::size_t limit,
                                          const char* fn, std::size_t max) {
        limit = std::min(limit, std::numeric_limits<std::size_t>::max() / 4);  // no overflow below
        std::size_t searched = 0;  // offsets below this cannot start a match
        for (;;) {
            std::string_view have(buf_.data() + begin_, end_ - begin_);
            std::size_t window = std::min(have.size(), limit + delim.size());
            std::size_t p = have.substr(0, window).find(delim, searched);
            if (p != std::string_view::npos) co_return p;
            if (have.size() >= limit + delim.size()) throw_too_long(fn, max);
            searched = window >= delim.size() ? window - delim.size() + 1 : 0;
            if (eof_) co_return std::nullopt;
            co_await fill(limit + delim.size() - have.size());
        }
    }

    // Read once from the stream into the free space (at most `want` bytes more
    // than needed are never buffered beyond one chunk).
    task<void> fill(std::size_t want) {
        if (begin_ == end_) begin_ = end_ = 0;
        std::size_t ask = std::min(want, chunk_);
        if (buf_.size() - end_ < ask) {
            if (begin_ > 0) {
                std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
                end_ -= begin_;
                begin_ = 0;
            }
            if (buf_.size() - end_ < ask) buf_.resize(end_ + std::max(ask, chunk_));
        }
        std::size_t n =
            co_await s_->read_some(std::span<char>(buf_.data() + end_, buf_.size() - end_));
        if (n == 0) eof_ = true;
        end_ += n;
    }

    // End of stream: the unterminated tail as the last record, or nullopt.
    std::optional<std::string> take_tail(std::size_t max, const char* fn) {
        if (begin_ == end_) return std::nullopt;
        if (end_ - begin_ > max) throw_too_long(fn, max);
        std::string rec(buf_.data() + begin_, end_ - begin_);
        begin_ = end_ = 0;
        return rec;
    }

    std::size_t copy_out(std::span<char> buf) {
        std::size_t n = std::min(buf.size(), end_ - begin_);
        if (n > 0) std::memcpy(buf.data(), buf_.data() + begin_, n);
        begin_ += n;
        return n;
    }

    [[noreturn]] static void throw_too_long(const char* fn, std::size_t max) {
        throw std::length_error(std::string("uthreads::buffered_reader::") + fn +
                                ": record longer than max (" + std::to_string(max) + " bytes)");
    }

    Stream* s_;
    std::size_t chunk_;
    std::vector<char> buf_;
    std::size_t begin_ = 0, end_ = 0;
    bool eof_ = false;
};

}  // namespace uthreads
