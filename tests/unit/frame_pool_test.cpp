// Unit tests for the per-thread frame allocator (detail/frame_pool.hpp).
//
// The allocator hands out coroutine frames and microthread records; these tests
// pin down the properties the rest of the library relies on: a freed block is
// reused for the next request of the same size class, large requests bypass the
// classes but still work, every block is suitably aligned, and the live counter
// behind lowlevel::live_frames() tracks exactly what is outstanding.
#include <uthreads/detail/frame_pool.hpp>
#include <uthreads/lowlevel/backend.hpp>

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

namespace {

namespace ut = uthreads;
namespace detail = uthreads::detail;

bool is_aligned(const void* p) {
    return reinterpret_cast<std::uintptr_t>(p) % __STDCPP_DEFAULT_NEW_ALIGNMENT__ == 0;
}

TEST(FramePoolTest, AllocFreeRoundTripKeepsContents) {
    void* p = detail::frame_alloc(200);
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(is_aligned(p));
    // The whole requested size is usable (ASan would flag a short block).
    std::memset(p, 0xAB, 200);
    const auto* bytes = static_cast<const unsigned char*>(p);
    EXPECT_EQ(bytes[0], 0xAB);
    EXPECT_EQ(bytes[199], 0xAB);
    detail::frame_free(p, 200);
}

TEST(FramePoolTest, FreedBlockIsReusedForSameSize) {
    void* a = detail::frame_alloc(100);
    detail::frame_free(a, 100);
    void* b = detail::frame_alloc(100);
    EXPECT_EQ(a, b) << "a freed block must be recycled for the next request of its size";
    detail::frame_free(b, 100);
}

TEST(FramePoolTest, FreedBlockIsReusedForAnySizeOfTheSameClass) {
    // 65..128 bytes share one 64-byte-granule class.
    void* a = detail::frame_alloc(65);
    detail::frame_free(a, 65);
    void* b = detail::frame_alloc(128);
    EXPECT_EQ(a, b);
    std::memset(b, 0x5A, 128);  // the recycled block is big enough for the whole class
    detail::frame_free(b, 128);
}

TEST(FramePoolTest, DifferentClassDoesNotGetTheFreedBlock) {
    void* small = detail::frame_alloc(64);
    detail::frame_free(small, 64);
    void* bigger = detail::frame_alloc(256);
    EXPECT_NE(small, bigger) << "a 64-byte block cannot serve a 256-byte request";
    std::memset(bigger, 0, 256);
    // The small block is still on its list and comes back for its own class.
    void* again = detail::frame_alloc(64);
    EXPECT_EQ(again, small);
    detail::frame_free(again, 64);
    detail::frame_free(bigger, 256);
}

TEST(FramePoolTest, FreeListIsLifoAcrossSeveralBlocks) {
    constexpr std::size_t size = 300;
    std::vector<void*> blocks;
    for (int i = 0; i < 8; ++i) blocks.push_back(detail::frame_alloc(size));
    for (std::size_t i = 0; i < blocks.size(); ++i)
        for (std::size_t j = i + 1; j < blocks.size(); ++j) EXPECT_NE(blocks[i], blocks[j]);
    for (void* p : blocks) detail::frame_free(p, size);
    // Every block handed out again is one of those freed: no new memory needed.
    std::vector<void*> again;
    for (int i = 0; i < 8; ++i) again.push_back(detail::frame_alloc(size));
    for (void* p : again) {
        bool known = false;
        for (void* q : blocks) known = known || p == q;
        EXPECT_TRUE(known);
    }
    for (void* p : again) detail::frame_free(p, size);
}

TEST(FramePoolTest, LargestClassBoundaryAndLargeSizesWork) {
    for (std::size_t size : {std::size_t{2047}, std::size_t{2048}, std::size_t{2049},
                             std::size_t{4096}, std::size_t{100000}}) {
        void* p = detail::frame_alloc(size);
        ASSERT_NE(p, nullptr) << size;
        EXPECT_TRUE(is_aligned(p)) << size;
        std::memset(p, 0xCD, size);
        EXPECT_EQ(static_cast<unsigned char*>(p)[size - 1], 0xCD) << size;
        detail::frame_free(p, size);
    }
}

TEST(FramePoolTest, SmallestSizesWork) {
    for (std::size_t size : {std::size_t{1}, std::size_t{8}, std::size_t{63}, std::size_t{64}}) {
        void* p = detail::frame_alloc(size);
        ASSERT_NE(p, nullptr);
        EXPECT_TRUE(is_aligned(p));
        std::memset(p, 1, size);
        detail::frame_free(p, size);
    }
}

TEST(FramePoolTest, LiveCounterTracksOutstandingBlocks) {
    const long long base = ut::lowlevel::live_frames();
    void* a = detail::frame_alloc(96);
    EXPECT_EQ(ut::lowlevel::live_frames(), base + 1);
    void* b = detail::frame_alloc(5000);  // large: bypasses the classes, still counted
    EXPECT_EQ(ut::lowlevel::live_frames(), base + 2);
    void* c = detail::frame_alloc(1024);
    EXPECT_EQ(ut::lowlevel::live_frames(), base + 3);
    detail::frame_free(b, 5000);
    EXPECT_EQ(ut::lowlevel::live_frames(), base + 2);
    detail::frame_free(a, 96);
    EXPECT_EQ(ut::lowlevel::live_frames(), base + 1);
    detail::frame_free(c, 1024);
    EXPECT_EQ(ut::lowlevel::live_frames(), base);
    // A recycled block is counted again when handed out.
    void* d = detail::frame_alloc(96);
    EXPECT_EQ(ut::lowlevel::live_frames(), base + 1);
    detail::frame_free(d, 96);
    EXPECT_EQ(ut::lowlevel::live_frames(), base);
}

TEST(FramePoolTest, EachThreadHasItsOwnCounterAndLists) {
    const long long base = ut::lowlevel::live_frames();
    void* mine = detail::frame_alloc(128);
    long long other_before = -1, other_during = -1, other_after = -1;
    bool other_reused_mine = true;
    std::thread t([&] {
        other_before = ut::lowlevel::live_frames();
        void* p = detail::frame_alloc(128);
        other_during = ut::lowlevel::live_frames();
        other_reused_mine = p == mine;
        std::memset(p, 7, 128);
        detail::frame_free(p, 128);
        other_after = ut::lowlevel::live_frames();
    });
    t.join();
    EXPECT_EQ(other_before, 0) << "a fresh thread starts with nothing outstanding";
    EXPECT_EQ(other_during, 1);
    EXPECT_EQ(other_after, 0);
    EXPECT_FALSE(other_reused_mine);
    EXPECT_EQ(ut::lowlevel::live_frames(), base + 1) << "other threads do not touch our counter";
    detail::frame_free(mine, 128);
    EXPECT_EQ(ut::lowlevel::live_frames(), base);
}

TEST(FramePoolTest, BlockFreedOnAnotherThreadJoinsThatThreadsList) {
    // The header allows freeing on a different thread: the block joins the
    // freeing thread's list. ASan checks the memory side.
    const long long base = ut::lowlevel::live_frames();
    void* p = detail::frame_alloc(512);
    std::memset(p, 3, 512);
    void* q = nullptr;
    std::thread t([p, &q] {
        // Warm up this thread's cache so that frees are recycled here.
        detail::frame_free(detail::frame_alloc(8), 8);
        detail::frame_free(p, 512);
        q = detail::frame_alloc(512);
        std::memset(q, 4, 512);
    });
    t.join();
    EXPECT_EQ(q, p) << "the block freed on the other thread was recycled there";
    // Hand it back: freeing here balances this thread's counter.
    detail::frame_free(q, 512);
    EXPECT_EQ(ut::lowlevel::live_frames(), base);
}

}  // namespace
