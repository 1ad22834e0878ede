// Slow paths of the per-thread frame allocator (see detail/frame_pool.hpp).
#include <uthreads/detail/frame_pool.hpp>
#include <uthreads/lowlevel/backend.hpp>

#include <atomic>
#include <new>

namespace uthreads::detail {

// Net frames of threads that ended: a frame may be allocated on one thread (a
// foreign thread making a task for runtime_handle::spawn, a worker) and freed
// on another, so each thread's count is folded in here when it exits, and
// live_frames() adds it to the calling thread's own.
std::atomic<long long> folded_frames{0};

namespace {
// Releases this thread's free lists at thread exit, and folds its count of live
// frames into folded_frames. Registered on the first
// slow-path allocation so that the fast path touches only POD thread_locals.
struct frame_cache_releaser {
    ~frame_cache_releaser() {
        frame_cache& c = tls_frame_cache;
        for (std::size_t cls = 0; cls < frame_classes; ++cls) {
            free_block* b = c.lists[cls];
            while (b) {
#ifdef UTHREADS_ASAN
                ASAN_UNPOISON_MEMORY_REGION(b, (cls + 1) * frame_granule);
#endif
                free_block* next = b->next;
                ::operator delete(b);
                b = next;
            }
            c.lists[cls] = nullptr;
        }
        c.registered = false;
        folded_frames.fetch_add(c.live, std::memory_order_relaxed);
        c.live = 0;
    }
};
}  // namespace

void* frame_alloc_slow(std::size_t size) {
    frame_cache& c = tls_frame_cache;
    if (!c.registered) {
        // Executing this declaration constructs the releaser and registers its
        // destructor for this thread's exit.
        static thread_local frame_cache_releaser releaser;
        (void)releaser;
        c.registered = true;
    }
    std::size_t cls = (size - 1) / frame_granule;
    // Round small blocks up to their class so that any block of a class can
    // serve any request of that class once recycled.
    std::size_t bytes = cls < frame_classes ? (cls + 1) * frame_granule : size;
    void* p = ::operator new(bytes);
    ++c.live;
    return p;
}

void fold_frame_count() noexcept {
    frame_cache& c = tls_frame_cache;
    folded_frames.fetch_add(c.live, std::memory_order_relaxed);
    c.live = 0;
}

void frame_free_slow(void* p, std::size_t) noexcept {
    // Either a large block or a thread that is exiting (lists already released).
    --tls_frame_cache.live;
    ::operator delete(p);
}

}  // namespace uthreads::detail

namespace uthreads::lowlevel {
long long live_frames() noexcept {
    return detail::tls_frame_cache.live + detail::folded_frames.load(std::memory_order_relaxed);
}
}  // namespace uthreads::lowlevel
