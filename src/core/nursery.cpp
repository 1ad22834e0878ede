// Nurseries: children, failure propagation, joining.
//
// With several workers, children finish (on_child_done), fail, cancel the
// nursery and spawn siblings from their own workers, so children_, error_,
// closed_ and joiner_ live under lock_ (sync_guard: a no-op with one worker).
// Cancelling the body must happen on the parent's worker: cancel_locked posts it
// there. That message is posted before the posting child finishes, and the
// parent is only woken (through the same FIFO remote queue) once every child has
// finished, so the nursery is still alive when the message runs.
// Lock order: nursery → remote queue (a cancel posted to a child's worker).
#include "scheduler_internal.hpp"

#include <uthreads/nursery.hpp>

namespace uthreads {

nursery::nursery(detail::scheduler& s) : s_(&s), parent_(s.current_) {}

nursery::~nursery() {
    drop_posted_cancel();
    // with_nursery always joins before the nursery dies; this only runs early if
    // the frame is destroyed without finishing (runtime torn down mid-way).
    for (detail::microthread* c : children_) {
        c->listener = nullptr;
        detail::release(c);
    }
}

void nursery::adopt(detail::scheduler& s, detail::microthread* child) {
    {
        detail::sync_guard g(lock_);
        if (!closed_) {
            if (cancelled_) {
                // Spawned into a cancelled nursery (with several workers a child
                // can finish and cancel it while the body is still spawning): it
                // starts cancelled, like its siblings. Not runnable yet, so its
                // flags are still ours to write.
                child->root_scope.cancelled = true;
                child->cancel_hint = true;
            }
            child->listener = this;
            child->index_in_owner = children_.size();
            children_.push_back(child);
        }
    }
    if (child->listener != this) {
        // Too late to join it: cancel it right away and let it run detached. It
        // is not runnable yet, so its flags are still ours to write.
        child->root_scope.cancelled = true;
        child->cancel_hint = true;
        s.publish(child);
        detail::release(child);
        throw std::logic_error("uthreads::nursery::spawn: the nursery has already closed");
    }
    s.publish(child);
}

void nursery::on_child_done(detail::microthread* m) noexcept {
    detail::sync_guard g(lock_);
    // Take it out of children_ (swap-remove).
    detail::microthread* last = children_.back();
    children_[m->index_in_owner] = last;
    last->index_in_owner = m->index_in_owner;
    children_.pop_back();
    m->listener = nullptr;
    m->error_observed = true;  // the nursery takes responsibility for it
    if (std::exception_ptr e = m->root->exception) {
        bool was_cancel = false;
        try {
            std::rethrow_exception(e);
        } catch (const cancelled&) {
            was_cancel = true;
        } catch (...) {
        }
        if (!was_cancel) fail_locked(e);
    }
    detail::release(m);
    // unpark hands the parent to its own worker if that is not this one.
    if (children_.empty() && joiner_) detail::unpark(*s_, std::exchange(joiner_, nullptr));
}

void nursery::fail_locked(std::exception_ptr e) noexcept {
    if (!error_) error_ = std::move(e);
    cancel_locked();
}

void nursery::cancel() {
    detail::sync_guard g(lock_);
    cancel_locked();
}

void nursery::cancel_body_here(void* self) noexcept {
    auto* n = static_cast<nursery*>(self);
    n->body_scope_.cancelled = true;
    n->parent_->cancel_hint = true;
    n->s_->deliver_cancel(n->parent_);
}

// A body cancellation posted to the parent's worker. The parent may leave
// with_nursery before the message runs (it need not be parked: the last child
// can finish while it runs), so the nursery may be gone by then: finish() and
// the destructor, which run on the parent's worker like the message, clear `n`
// first. Both sides run on that one thread, so `n` needs no lock.
struct nursery::body_cancel_message {
    nursery* n;
    static void run(void* p) noexcept {
        auto* msg = static_cast<body_cancel_message*>(p);
        if (nursery* n = msg->n) {
            {
                detail::sync_guard g(n->lock_);
                n->posted_ = nullptr;
            }
            cancel_body_here(n);
        }
        delete msg;
    }
};

void nursery::drop_posted_cancel() noexcept {
    detail::sync_guard g(lock_);
    // The body has ended: cancelling its scope now would change nothing.
    if (posted_) std::exchange(posted_, nullptr)->n = nullptr;
}

void nursery::cancel_locked() noexcept {
    cancelled_ = true;
    // The body's scope and its microthread's flags belong to the parent's worker.
    if (detail::tls_multi && detail::tls_scheduler != s_) [[unlikely]] {
        if (!posted_) {
            posted_ = new body_cancel_message{this};
            s_->post(&body_cancel_message::run, posted_);
        }
    } else {
        cancel_body_here(this);
    }
    cancel_children_locked();
}

void nursery::cancel_children_locked() noexcept {
    // cancel() only schedules (or posts); it never runs a child, so children_ is
    // stable here.
    for (detail::microthread* c : children_) s_->cancel(c);
}

void nursery::body_failed(std::exception_ptr e) {
    try {
        std::rethrow_exception(e);
    } catch (const cancelled&) {
        // The body was cancelled: by this nursery (then not an error of its own) or
        // from outside (finish() rethrows that); either way stop the children.
        detail::sync_guard g(lock_);
        cancel_children_locked();
        return;
    } catch (...) {
    }
    detail::sync_guard g(lock_);
    fail_locked(std::move(e));
}

bool nursery::join_operation::await_suspend(std::coroutine_handle<> h) noexcept {
    detail::sync_guard g(n->lock_);
    // With several workers the last child may have finished since await_ready.
    if (n->children_.empty()) return false;
    detail::microthread* m = n->s_->current_;
    m->resume = h;
    m->wait = this;
    n->joiner_ = m;
    try_cancel = [](detail::wait_node* w) {
        // Cancelling the parent while it joins cancels the children; it keeps
        // waiting for them (nothing may outlive with_nursery).
        nursery* n = static_cast<join_operation*>(w)->n;
        detail::sync_guard g(n->lock_);
        n->cancel_children_locked();
        return false;
    };
    // Cancellation may already be pending (the body was cancelled from outside).
    if (detail::cancel_pending(m)) n->cancel_children_locked();
    return true;
}

nursery::join_operation nursery::join_all() {
    join_operation op{};
    op.n = this;
    return op;
}

void nursery::finish() {
    drop_posted_cancel();
    {
        detail::sync_guard g(lock_);
        closed_ = true;
    }
    if (error_) std::rethrow_exception(error_);
    if (detail::cancel_pending(parent_)) throw cancelled{};
}

}  // namespace uthreads

namespace uthreads::detail {

nursery_body_scope::nursery_body_scope(nursery& n) : m_(current_scheduler("with_nursery").current_) {
    node_ = &n.body_scope();
    node_->parent = m_->scope;
    m_->scope = node_;
}

nursery_body_scope::~nursery_body_scope() { m_->scope = node_->parent; }

}  // namespace uthreads::detail
