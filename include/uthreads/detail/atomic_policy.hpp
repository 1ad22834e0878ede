/// \file
/// The "atomics policy" that lock-free algorithms in detail/ are written against.
///
/// `ws_deque` and `parker` never name `std::atomic` directly; they take a policy
/// type `Atomics` and use `typename Atomics::template atomic<T>` and
/// `Atomics::fence(order)`. Production code uses `std_atomics` below, which is
/// exactly `std::atomic` (no cost, no indirection). The unit tests substitute an
/// instrumented policy (tests/unit/model_check.hpp) whose every operation is a
/// scheduling point of a small model checker, so the same source text that ships
/// is the source text whose interleavings are enumerated.
///
/// A policy must provide, for the `T`s the algorithms use (integers, enums,
/// pointers): `load`, `store`, `exchange`, `compare_exchange_strong`, `fetch_add`,
/// `fetch_sub` with `std::atomic`'s signatures, plus a static `fence`.
#pragma once

#include <atomic>

namespace uthreads::detail {

/// The production policy: plain `std::atomic` and `std::atomic_thread_fence`.
struct std_atomics {
    template <class T>
    using atomic = std::atomic<T>;

    static void fence(std::memory_order order) noexcept { std::atomic_thread_fence(order); }
};

}  // namespace uthreads::detail
