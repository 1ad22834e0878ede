// The background reaper for children whose `process` was destroyed before
// their exit was collected (see uthreads/process.hpp, "No zombies").
#pragma once

namespace uthreads::detail {

/// Take ownership of `pidfd`, a pidfd of an unreaped child of ours. If the
/// child has already exited it is reaped at once; otherwise the reaper thread
/// reaps it when it exits, then closes `pidfd`. Never blocks, never kills.
void reap_in_background(int pidfd) noexcept;

}  // namespace uthreads::detail
