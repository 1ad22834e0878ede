// Cancel scopes: the level-triggered check, shields and deadline scopes.
#include <uthreads/cancel.hpp>

namespace uthreads::detail {

bool cancel_pending_slow(const microthread* m) noexcept {
    for (const cancel_scope_node* s = m->scope; s; s = s->parent) {
        if (s->cancelled) return true;
        if (s->shield) return false;
    }
    return false;
}

deadline_scope::deadline_scope(clock::duration d, const char* what)
    : s_(&current_scheduler(what)), m_(s_->current_) {
    node_.parent = m_->scope;
    m_->scope = &node_;
    deadline = s_->now() + d;
    fire = [](timer_node* t) {
        auto* self = static_cast<deadline_scope*>(t);
        self->node_.cancelled = true;
        self->m_->cancel_hint = true;
        self->s_->deliver_cancel(self->m_);
    };
    s_->add_timer(this);
}

deadline_scope::~deadline_scope() {
    if (armed()) s_->remove_timer(this);
    m_->scope = node_.parent;
}

bool deadline_scope::expired_alone() const noexcept {
    if (!node_.cancelled) return false;
    // Something outside is cancelled too: that cancellation wins, so the caller
    // sees `cancelled` rather than a timeout it did not ask about.
    for (const cancel_scope_node* s = node_.parent; s; s = s->parent) {
        if (s->cancelled) return false;
        if (s->shield) break;
    }
    return true;
}

}  // namespace uthreads::detail

namespace uthreads {

cancel_shield::cancel_shield() : m_(detail::current_scheduler("cancel_shield").current_) {
    node_.shield = true;
    node_.parent = m_->scope;
    m_->scope = &node_;
}

cancel_shield::~cancel_shield() { m_->scope = node_.parent; }

}  // namespace uthreads
