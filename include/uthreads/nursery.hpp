/// \file
/// Structured concurrency: `with_nursery`, `when_all`, `when_any`.
///
/// A nursery owns the microthreads spawned into it. `with_nursery` runs its body,
/// then waits for every child. The first failure (an exception other than
/// `cancelled`, in the body or a child) cancels the body and all other children
/// and is rethrown once they have all finished. Cancelling the microthread that
/// runs `with_nursery` cancels its children too. Nothing outlives the call.
#pragma once

#include <uthreads/spawn.hpp>

#include <cstddef>
#include <exception>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

namespace uthreads {

class nursery : private detail::completion_listener {
public:
    nursery(const nursery&) = delete;
    nursery& operator=(const nursery&) = delete;

    /// Start `t` as a child microthread. Its value is discarded; its exception
    /// fails the nursery. Throws std::logic_error once the nursery has closed.
    template <class T>
    void spawn(task<T> t, std::string name = {}) {
        if (!t.valid()) detail::throw_empty_task();
        // The calling worker (a child may spawn siblings from another worker).
        auto& s = detail::current_scheduler("nursery::spawn");
        auto h = t.release();
        adopt(s, s.create(h, &h.promise(), std::move(name)));
    }

    /// Cancel the body and every child (not a failure: `with_nursery` returns
    /// normally if nothing else failed).
    void cancel();

    /// Number of children still running.
    std::size_t running() const noexcept {
        detail::sync_guard g(lock_);
        return children_.size();
    }

    // Used by with_nursery; not for users.
    explicit nursery(detail::scheduler& s);
    ~nursery();
    struct join_operation;
    join_operation join_all();
    void body_failed(std::exception_ptr e);
    void finish();  // closes the nursery; rethrows its failure, if any
    detail::cancel_scope_node& body_scope() noexcept { return body_scope_; }

private:
    void adopt(detail::scheduler& s, detail::microthread* child);
    void on_child_done(detail::microthread* m) noexcept override;
    // The *_locked functions run with lock_ held (several workers).
    void fail_locked(std::exception_ptr e) noexcept;
    void cancel_locked() noexcept;
    void cancel_children_locked() noexcept;
    static void cancel_body_here(void* self) noexcept;
    struct body_cancel_message;
    void drop_posted_cancel() noexcept;

    detail::scheduler* s_;
    detail::microthread* parent_;
    std::vector<detail::microthread*> children_;
    std::exception_ptr error_;
    detail::cancel_scope_node body_scope_;
    bool body_scope_pushed_ = false;
    bool closed_ = false;
    bool cancelled_ = false;  // cancel() or a failure: later children start cancelled
    body_cancel_message* posted_ = nullptr;  // a body cancellation on its way to s_
    detail::microthread* joiner_ = nullptr;
    // Several workers: guards children_, error_, closed_ and joiner_ (children
    // finish, fail and spawn siblings from their own workers).
    mutable detail::spinlock lock_;
    friend class body_scope_guard;
};

struct nursery::join_operation : detail::wait_node {
    nursery* n;
    bool await_ready() const noexcept { return n->running() == 0; }
    bool await_suspend(std::coroutine_handle<> h) noexcept;
    void await_resume() const noexcept {}
};

namespace detail {
class nursery_body_scope {
public:
    explicit nursery_body_scope(nursery& n);
    ~nursery_body_scope();
    nursery_body_scope(const nursery_body_scope&) = delete;
    nursery_body_scope& operator=(const nursery_body_scope&) = delete;

private:
    microthread* m_;
    cancel_scope_node* node_;
};
}  // namespace detail

/// Run `body(n)` (a callable returning `task<>`) with a fresh nursery `n`, then
/// wait for all of `n`'s children. See the file comment for failure handling.
/// Suspension point; cancellation point (cancels the children, then rethrows
/// `cancelled` once they finished).
template <class F>
task<void> with_nursery(F body) {
    nursery n(detail::current_scheduler("with_nursery"));
    {
        detail::nursery_body_scope scope(n);
        try {
            co_await body(n);
        } catch (...) {
            n.body_failed(std::current_exception());
        }
    }
    // Children may spawn siblings into `n` while it joins: it stays open until
    // the body has ended and no child is left.
    while (n.running() > 0) co_await n.join_all();
    n.finish();
}

namespace detail {
template <class T, class R>
task<void> store_result(task<T> t, std::optional<R>& out) {
    if constexpr (std::is_void_v<T>) {
        co_await std::move(t);
        out.emplace();
    } else {
        out.emplace(co_await std::move(t));
    }
}

template <std::size_t I, class V, class T>
task<void> store_first(task<T> t, V& out, nursery& n) {
    if constexpr (std::is_void_v<T>) {
        co_await std::move(t);
        if (!out) out.emplace(std::in_place_index<I>);
    } else {
        auto v = co_await std::move(t);
        if (!out) out.emplace(std::in_place_index<I>, std::move(v));
    }
    n.cancel();
}

template <class... T, std::size_t... I>
task<std::tuple<non_void_t<T>...>> when_all_impl(std::index_sequence<I...>, task<T>... ts) {
    std::tuple<std::optional<non_void_t<T>>...> results;
    co_await with_nursery([&](nursery& n) -> task<void> {
        (n.spawn(store_result(std::move(ts), std::get<I>(results))), ...);
        co_return;
    });
    co_return std::tuple<non_void_t<T>...>(std::move(*std::get<I>(results))...);
}

template <class... T, std::size_t... I>
task<std::variant<non_void_t<T>...>> when_any_impl(std::index_sequence<I...>, task<T>... ts) {
    std::optional<std::variant<non_void_t<T>...>> winner;
    co_await with_nursery([&](nursery& n) -> task<void> {
        (n.spawn(store_first<I>(std::move(ts), winner, n)), ...);
        co_return;
    });
    // Every child ended; if none produced a value they were all cancelled from
    // outside, and with_nursery has rethrown that already.
    if (!winner) throw ::uthreads::cancelled{};
    co_return std::move(*winner);
}
}  // namespace detail

/// Run all tasks concurrently (each in its own child microthread) and return all
/// their values (void → std::monostate). The first failure cancels the others and
/// is rethrown. Suspension and cancellation point.
template <class... T>
task<std::tuple<detail::non_void_t<T>...>> when_all(task<T>... ts) {
    return detail::when_all_impl(std::index_sequence_for<T...>{}, std::move(ts)...);
}

/// Run all tasks concurrently; the first to finish wins, the rest are cancelled and
/// joined. Returns a variant whose index() says which task won (void →
/// std::monostate). A failure before any success is rethrown.
/// Suspension and cancellation point.
template <class... T>
task<std::variant<detail::non_void_t<T>...>> when_any(task<T>... ts) {
    return detail::when_any_impl(std::index_sequence_for<T...>{}, std::move(ts)...);
}

/// when_all over a vector of same-typed tasks; results in input order.
template <class T>
task<std::vector<detail::non_void_t<T>>> when_all(std::vector<task<T>> ts) {
    std::vector<std::optional<detail::non_void_t<T>>> results(ts.size());
    co_await with_nursery([&](nursery& n) -> task<void> {
        for (std::size_t i = 0; i < ts.size(); ++i)
            n.spawn(detail::store_result(std::move(ts[i]), results[i]));
        co_return;
    });
    std::vector<detail::non_void_t<T>> out;
    out.reserve(results.size());
    for (auto& r : results) out.push_back(std::move(*r));
    co_return out;
}

}  // namespace uthreads
