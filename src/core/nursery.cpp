// Nurseries: children, failure propagation, joining.
#include "scheduler_internal.hpp"

#include <uthreads/nursery.hpp>

namespace uthreads {

nursery::nursery(detail::scheduler& s) : s_(&s), parent_(s.current_) {}

nursery::~nursery() {
    // with_nursery always joins before the nursery dies; this only runs early if
    // the frame is destroyed without finishing (runtime torn down mid-way).
    for (detail::microthread* c : children_) {
        c->listener = nullptr;
        detail::release(c);
    }
}

void nursery::adopt(detail::microthread* child) {
    if (closed_) {
        // Too late to join it: cancel it right away and let it run detached.
        s_->cancel(child);
        detail::release(child);
        throw std::logic_error("uthreads::nursery::spawn: the nursery has already closed");
    }
    child->listener = this;
    child->index_in_owner = children_.size();
    children_.push_back(child);
}

void nursery::on_child_done(detail::microthread* m) noexcept {
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
        if (!was_cancel) fail(e);
    }
    detail::release(m);
    if (children_.empty() && joiner_) detail::unpark(*s_, std::exchange(joiner_, nullptr));
}

void nursery::fail(std::exception_ptr e) noexcept {
    if (!error_) error_ = std::move(e);
    cancel();
}

void nursery::cancel() {
    body_scope_.cancelled = true;
    parent_->cancel_hint = true;
    s_->deliver_cancel(parent_);
    cancel_children();
}

void nursery::cancel_children() noexcept {
    // cancel() only schedules; it never runs a child, so children_ is stable here.
    for (detail::microthread* c : children_) s_->cancel(c);
}

void nursery::body_failed(std::exception_ptr e) {
    try {
        std::rethrow_exception(e);
    } catch (const cancelled&) {
        // The body was cancelled: by this nursery (then not an error of its own) or
        // from outside (finish() rethrows that); either way stop the children.
        cancel_children();
        return;
    } catch (...) {
    }
    fail(std::move(e));
}

void nursery::join_operation::await_suspend(std::coroutine_handle<> h) noexcept {
    detail::microthread* m = n->s_->current_;
    m->resume = h;
    m->wait = this;
    n->joiner_ = m;
    try_cancel = [](detail::wait_node* w) {
        // Cancelling the parent while it joins cancels the children; it keeps
        // waiting for them (nothing may outlive with_nursery).
        static_cast<join_operation*>(w)->n->cancel_children();
        return false;
    };
    // Cancellation may already be pending (the body was cancelled from outside).
    if (detail::cancel_pending(m)) n->cancel_children();
}

nursery::join_operation nursery::join_all() {
    join_operation op{};
    op.n = this;
    return op;
}

void nursery::finish() {
    closed_ = true;
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
