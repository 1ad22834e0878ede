/// \file
/// Per-thread recycling allocator for coroutine frames and microthread records.
///
/// Spawning a microthread or calling a nested `task` allocates a coroutine frame.
/// Going to malloc for each one dominates the cost of a spawn, so frames are
/// recycled through per-thread free lists bucketed by size (64-byte classes up
/// to 2 KiB). Larger frames go straight to `::operator new`.
///
/// Thread safety: each thread has its own lists. A block freed on another thread
/// than the one that allocated it simply joins the freeing thread's list; every
/// block comes from `::operator new` individually, so that is always sound.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__SANITIZE_ADDRESS__)
#define UTHREADS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UTHREADS_ASAN 1
#endif
#endif

#ifdef UTHREADS_ASAN
#include <sanitizer/asan_interface.h>
#endif

// Our thread_locals are read on every spawn, resume and hand-off. The library is
// built position-independent, where the default TLS model goes through
// __tls_get_addr on each access; initial-exec is one instruction and is valid
// for any library linked at program start (the static library always is).
#if defined(__GNUC__) || defined(__clang__)
#define UTHREADS_TLS_FAST __attribute__((tls_model("initial-exec")))
#else
#define UTHREADS_TLS_FAST
#endif

namespace uthreads::detail {

inline constexpr std::size_t frame_granule = 64;
inline constexpr std::size_t frame_classes = 32;

struct free_block {
    free_block* next;
};

/// Plain-old-data so that thread_local access needs no guard on the hot path;
/// the lists are released at thread exit by a guard object registered on the
/// first slow-path allocation (see frame_pool.cpp).
struct frame_cache {
    free_block* lists[frame_classes];
    std::int64_t live;  // blocks handed out minus blocks returned, on this thread
    bool registered;
};

inline thread_local frame_cache tls_frame_cache UTHREADS_TLS_FAST{};

void* frame_alloc_slow(std::size_t size);
void frame_free_slow(void* p, std::size_t size) noexcept;

inline void* frame_alloc(std::size_t size) {
    std::size_t cls = (size - 1) / frame_granule;
    frame_cache& c = tls_frame_cache;
    if (cls < frame_classes) {
        if (free_block* b = c.lists[cls]) {
#ifdef UTHREADS_ASAN
            ASAN_UNPOISON_MEMORY_REGION(b, (cls + 1) * frame_granule);
#endif
            c.lists[cls] = b->next;
            ++c.live;
            return b;
        }
    }
    return frame_alloc_slow(size);
}

inline void frame_free(void* p, std::size_t size) noexcept {
    std::size_t cls = (size - 1) / frame_granule;
    frame_cache& c = tls_frame_cache;
    if (cls < frame_classes && c.registered) {
        auto* b = static_cast<free_block*>(p);
        b->next = c.lists[cls];
        c.lists[cls] = b;
        --c.live;
#ifdef UTHREADS_ASAN
        // Poison the block while it sits on the free list, so a use after free of
        // a recycled frame is still reported.
        ASAN_POISON_MEMORY_REGION(b, (cls + 1) * frame_granule);
#endif
        return;
    }
    frame_free_slow(p, size);
}

}  // namespace uthreads::detail
