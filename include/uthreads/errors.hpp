/// \file
/// Exceptions thrown by uthreads.
#pragma once

#include <stdexcept>
#include <string>

namespace uthreads {

/// Thrown at the next suspension point of a microthread whose cancellation was
/// requested (by `join_handle::cancel`, a nursery, `with_timeout`, or the end of
/// `run`). Deliberately NOT derived from `std::exception`: a `catch
/// (std::exception&)` in user code must not swallow a cancellation. Catch it only
/// to clean up, then rethrow.
class cancelled {
public:
    const char* what() const noexcept { return "uthreads::cancelled"; }
};

/// Thrown by `with_timeout` when its deadline passed before the awaited operation
/// finished.
class timeout_error : public std::runtime_error {
public:
    timeout_error() : std::runtime_error("uthreads: operation timed out") {}
    using std::runtime_error::runtime_error;
};

/// Thrown by `channel<T>::send` (and `try_send`) on a closed channel.
class channel_closed : public std::logic_error {
public:
    channel_closed() : std::logic_error("uthreads::channel: send on a closed channel") {}
};

}  // namespace uthreads
