// file, identical on every backend (io_uring's completion operations, the
// blocking pool elsewhere): round trips from 1 byte to 16 MiB, positional
// reads and writes, end of file, errors naming the path, fsync, CLOEXEC,
// cancellation in the middle of large transfers (ASan catches a kernel or pool
// thread writing into a freed buffer), concurrent readers, and closing with
// operations in flight.

#include "conformance.hpp"
#include "io_helpers.hpp"

#include <uthreads/file.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <sys/stat.h>
#include <system_error>
#include <unistd.h>
#include <vector>

namespace uthreads_conformance {
namespace {

class FileTest : public backend_test {};  // NOLINT(readability-identifier-naming)

namespace fs = std::filesystem;

constexpr std::size_t mib = std::size_t{1024} * 1024;

/// Everything from the file position to the end, read with `chunk`-sized reads.
ut::task<std::vector<std::byte>> read_to_end(ut::file& f, std::size_t chunk) {
    std::vector<std::byte> out;
    std::vector<std::byte> buf(chunk);
    for (;;) {
        std::size_t n = co_await f.read(std::span<std::byte>(buf));
        if (n == 0) co_return out;
        out.insert(out.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
    }
}

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST_P(FileTest, WriteThenReadBackFromOneByteTo16MiB) {
    temp_dir dir("uthreads-file");
    const std::vector<std::size_t> sizes{1, 4095, 4096, 65537, mib, 16 * mib};
    std::vector<std::size_t> read_sizes, reported_sizes;
    int matched = 0;
    run_on_backend([&]() -> ut::task<> {
        for (std::size_t size : sizes) {
            std::string path = dir.file(("data-" + std::to_string(size)).c_str());
            std::vector<std::byte> data = pattern(size, static_cast<unsigned>(size));
            {
                ut::file f = co_await ut::file::open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
                co_await f.write(std::span<const std::byte>(data));
                reported_sizes.push_back(f.size());
            }
            ut::file f = co_await ut::file::open(path);
            // Big reads for big files (each one a single large operation), and a
            // read that is larger than the whole file for small ones.
            std::vector<std::byte> back =
                co_await read_to_end(f, std::max(size / 2, std::size_t{8192}));
            read_sizes.push_back(back.size());
            if (back == data) ++matched;
        }
    }());
    EXPECT_EQ(read_sizes, sizes);
    EXPECT_EQ(reported_sizes, sizes);
    EXPECT_EQ(matched, static_cast<int>(sizes.size()));
}

TEST_P(FileTest, ReadAtAndWriteAtUseOffsetsAndLeaveThePositionAlone) {
    temp_dir dir("uthreads-file");
    std::string path = dir.file("offsets");
    std::string at12, tail, from_start, after_write;
    std::size_t past_end = 99, size = 0;
    run_on_backend([&]() -> ut::task<> {
        ut::file f = co_await ut::file::open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
        co_await f.write_at(10, "abcdef");  // a hole of 10 zero bytes before it
        std::string buf(3, '?');
        std::size_t n = co_await f.read_at(12, std::span<char>(buf));
        at12 = buf.substr(0, n);
        std::string big(10, '?');
        n = co_await f.read_at(14, std::span<char>(big));  // only 2 bytes are left
        tail = big.substr(0, n);
        past_end = co_await f.read_at(1000, std::span<char>(big));
        // The position is still 0: a plain read starts at the hole.
        std::string all(32, '?');
        n = co_await f.read(std::span<char>(all));
        from_start = all.substr(0, n);
        co_await f.write_at(0, "XY");
        co_await f.write("Z");  // at the position, which the read moved to the end
        size = f.size();
    }());
    after_write = slurp(path);
    EXPECT_EQ(at12, "cde");
    EXPECT_EQ(tail, "ef");
    EXPECT_EQ(past_end, 0u);
    EXPECT_EQ(from_start, std::string(10, '\0') + "abcdef");
    EXPECT_EQ(after_write, "XY" + std::string(8, '\0') + "abcdefZ");
    EXPECT_EQ(size, 17u);
}

TEST_P(FileTest, ReadReturnsZeroAtEndOfFile) {
    temp_dir dir("uthreads-file");
    std::string path = dir.file("eof");
    std::size_t empty_read = 99, first = 0, second = 99, again = 99;
    run_on_backend([&]() -> ut::task<> {
        std::string buf(64, '?');
        {
            ut::file f = co_await ut::file::open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
            empty_read = co_await f.read(std::span<char>(buf));
            co_await f.write("hello");
        }
        ut::file f = co_await ut::file::open(path);
        first = co_await f.read(std::span<char>(buf));
        second = co_await f.read(std::span<char>(buf));
        again = co_await f.read(std::span<char>(buf));
    }());
    EXPECT_EQ(empty_read, 0u);
    EXPECT_EQ(first, 5u);
    EXPECT_EQ(second, 0u);
    EXPECT_EQ(again, 0u);
}

TEST_P(FileTest, OpenOfAMissingFileThrowsEnoentNamingThePath) {
    temp_dir dir("uthreads-file");
    std::string missing = dir.file("no-such-file");
    std::error_code code, exists_code, isdir_code;
    std::string what;
    run_on_backend([&]() -> ut::task<> {
        try {
            (void)co_await ut::file::open(missing);
        } catch (const std::system_error& e) {
            code = e.code();
            what = e.what();
        }
        // Created, and closed at once.
        (void)co_await ut::file::open(dir.file("exists"), O_WRONLY | O_CREAT, 0600);
        try {
            (void)co_await ut::file::open(dir.file("exists"), O_WRONLY | O_CREAT | O_EXCL, 0600);
        } catch (const std::system_error& e) {
            exists_code = e.code();
        }
        try {
            (void)co_await ut::file::open(dir.path.string(), O_WRONLY);
        } catch (const std::system_error& e) {
            isdir_code = e.code();
        }
    }());
    EXPECT_EQ(code, std::errc::no_such_file_or_directory) << what;
    EXPECT_NE(what.find("open " + missing), std::string::npos) << what;
    EXPECT_NE(what.find("No such file or directory"), std::string::npos) << what;
    EXPECT_EQ(exists_code, std::errc::file_exists);
    EXPECT_EQ(isdir_code, std::errc::is_a_directory);
}

TEST_P(FileTest, FsyncAndFdatasyncSucceedAndTheDataIsThere) {
    temp_dir dir("uthreads-file");
    std::string path = dir.file("synced");
    bool synced = false;
    run_on_backend([&]() -> ut::task<> {
        ut::file f = co_await ut::file::open(path, O_WRONLY | O_CREAT | O_TRUNC, 0640);
        co_await f.write("durable\n");
        co_await f.fsync();
        co_await f.write("more\n");
        co_await f.fdatasync();
        synced = true;
    }());
    EXPECT_TRUE(synced);
    EXPECT_EQ(slurp(path), "durable\nmore\n");
    mode_t mask = ::umask(0);
    ::umask(mask);
    EXPECT_EQ(static_cast<unsigned>(fs::status(path).permissions() & fs::perms::all),
              0640u & ~static_cast<unsigned>(mask));
}

TEST_P(FileTest, DescriptorIsCloexec) {
    temp_dir dir("uthreads-file");
    int fd_flags = -1;
    run_on_backend([&]() -> ut::task<> {
        ut::file f = co_await ut::file::open(dir.file("cloexec"), O_WRONLY | O_CREAT, 0600);
        fd_flags = ::fcntl(f.native_handle(), F_GETFD);
    }());
    ASSERT_GE(fd_flags, 0);
    EXPECT_TRUE(fd_flags & FD_CLOEXEC);
}

TEST_P(FileTest, AppendModeAppends) {
    temp_dir dir("uthreads-file");
    std::string path = dir.file("log");
    run_on_backend([&]() -> ut::task<> {
        for (const char* line : {"one\n", "two\n"}) {
            ut::file f = co_await ut::file::open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
            co_await f.write(line);
        }
    }());
    EXPECT_EQ(slurp(path), "one\ntwo\n");
}

TEST_P(FileTest, ConcurrentReadsFromSeveralMicrothreads) {
    temp_dir dir("uthreads-file");
    std::string path = dir.file("shared");
    constexpr int readers = 8;
    constexpr std::size_t chunk = std::size_t{256} * 1024;
    std::vector<std::byte> data = pattern(readers * chunk, 7);
    std::atomic<int> matched{0};
    run_on_backend([&]() -> ut::task<> {
        {
            ut::file w = co_await ut::file::open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
            co_await w.write(std::span<const std::byte>(data));
        }
        ut::file f = co_await ut::file::open(path);
        co_await ut::with_nursery([&](ut::nursery& n) -> ut::task<> {
            for (int i = 0; i < readers; ++i)
                // Captureless: a coroutine lambda's captures live in the
                // closure, a temporary gone before the child runs.
                n.spawn([](ut::file& f, const std::vector<std::byte>& data,
                           std::atomic<int>& matched, std::size_t k) -> ut::task<> {
                    // Each reader reads its chunk backwards in 4 pieces, so the
                    // readers' operations interleave.
                    std::vector<std::byte> got(chunk);
                    for (int piece = 3; piece >= 0; --piece) {
                        std::size_t off = static_cast<std::size_t>(piece) * (chunk / 4);
                        std::size_t done = 0;
                        while (done < chunk / 4) {
                            std::size_t n = co_await f.read_at(
                                k * chunk + off + done,
                                std::span<std::byte>(got).subspan(off + done, chunk / 4 - done));
                            if (n == 0) break;
                            done += n;
                        }
                    }
                    if (std::equal(got.begin(), got.end(),
                                   data.begin() + static_cast<std::ptrdiff_t>(k * chunk)))
                        ++matched;
                }(f, data, matched, static_cast<std::size_t>(i)));
            co_return;
        });
    }());
    EXPECT_EQ(matched.load(), readers);
}

TEST_P(FileTest, CancellingLargeReadsAndWritesLeavesNoLeakOrDanglingBuffer) {
    temp_dir dir("uthreads-file");
    std::string path = dir.file("big");
    const std::vector<std::byte> data = pattern(16 * mib, 3);
    int completed = 0, cut_short = 0;
    bool final_match = false;
    run_on_backend([&]() -> ut::task<> {
        ut::file f = co_await ut::file::open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
        co_await f.write(std::span<const std::byte>(data));
        for (auto d : {0us, 20us, 100us, 500us, 2000us, 10000us}) {
            // The buffers live in the cancelled operations' own frames, freed as
            // soon as they unwind: a late write into them is a use-after-free.
            auto reader = [&f]() -> ut::task<std::size_t> {
                std::vector<std::byte> buf(16 * mib);
                co_return co_await f.read_at(0, std::span<std::byte>(buf));
            };
            auto writer = [&f, &data]() -> ut::task<bool> {
                std::vector<std::byte> copy(data);
                co_await f.write_at(0, std::span<const std::byte>(copy));
                co_return true;
            };
            std::optional<std::size_t> r = co_await ut::move_on_after(d, reader());
            (r ? completed : cut_short) += 1;
            try {
                (void)co_await ut::with_timeout(d, writer());
                ++completed;
            } catch (const ut::timeout_error&) {
                ++cut_short;
            }
            // A reader and a writer cancelled from outside while both are in flight.
            auto h1 = ut::spawn(reader());
            auto h2 = ut::spawn(writer());
            co_await ut::sleep_for(d);
            h1.cancel();
            h2.cancel();
            try {
                (void)co_await h1;
            } catch (const ut::cancelled&) {
            }
            try {
                (void)co_await h2;
            } catch (const ut::cancelled&) {
            }
        }
        // The file is still usable: any write cut short wrote the same bytes.
        co_await f.write_at(0, std::span<const std::byte>(data));
        std::vector<std::byte> back(data.size());
        std::size_t got = 0;
        while (got < back.size()) {
            std::size_t n = co_await f.read_at(got, std::span<std::byte>(back).subspan(got));
            if (n == 0) break;
            got += n;
        }
        final_match = got == data.size() && back == data;
    }());
    EXPECT_EQ(completed + cut_short, 12);
    EXPECT_TRUE(final_match);
}

// A read that is really waiting (a FIFO with no data yet) when it is
// cancelled: io_uring cancels it in the kernel and the data stays in the FIFO;
// the blocking pool cannot interrupt read(2), so the read returns the data when
// it comes. Either way, nothing written is lost.
TEST_P(FileTest, CancellingAReadThatWaitsForDataLosesNothing) {
    temp_dir dir("uthreads-file");
    std::string path = dir.file("fifo");
    ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0) << std::strerror(errno);
    std::string got;
    bool reader_cancelled = false;
    run_on_backend([&]() -> ut::task<> {
        // O_RDWR: opening does not wait for a writer, and reads wait for data
        // instead of seeing end of file.
        ut::file f = co_await ut::file::open(path, O_RDWR);
        auto h = ut::spawn([](ut::file& f, std::string& got) -> ut::task<> {
            std::string buf(16, '\0');
            std::size_t n = co_await f.read(std::span<char>(buf));
            got.append(buf.data(), n);
        }(f, got));
        co_await ut::sleep_for(20ms);  // the read is in the kernel, or on a pool thread
        h.cancel();
        int w = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
        EXPECT_GE(w, 0) << std::strerror(errno);
        EXPECT_EQ(::write(w, "ping", 4), 4);
        ::close(w);
        try {
            co_await h;
        } catch (const ut::cancelled&) {
            reader_cancelled = true;
        }
        if (got.empty()) {
            std::string buf(16, '\0');
            std::size_t n = co_await f.read(std::span<char>(buf));
            got.append(buf.data(), n);
        }
    }());
    // Which way it went, for the XML report (--gtest_output=xml).
    RecordProperty("reader", reader_cancelled ? "cancelled" : "completed");
    EXPECT_EQ(got, "ping") << (reader_cancelled ? "cancelled in the kernel" : "read completed");
}

TEST_P(FileTest, ClosingWithAnOperationInFlightKeepsTheDescriptorUntilItEnds) {
    temp_dir dir("uthreads-file");
    std::string path = dir.file("closing");
    const std::vector<std::byte> data = pattern(4 * mib, 5);
    std::size_t read_back = 0;
    std::error_code after_close;
    std::string after_close_what;
    bool open_after = true;
    run_on_backend([&]() -> ut::task<> {
        {
            ut::file w = co_await ut::file::open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
            co_await w.write(std::span<const std::byte>(data));
        }
        ut::file f = co_await ut::file::open(path);
        std::vector<std::byte> buf(data.size());
        auto h = ut::spawn(f.read_at(0, std::span<std::byte>(buf)));
        co_await ut::yield_now();  // the read is in flight (or done)
        f.close();
        open_after = f.is_open();
        read_back = co_await h;
        try {
            (void)co_await f.read(std::span<std::byte>(buf));
        } catch (const std::system_error& e) {
            after_close = e.code();
            after_close_what = e.what();
        }
    }());
    EXPECT_FALSE(open_after);
    EXPECT_GT(read_back, 0u);
    EXPECT_EQ(after_close, std::errc::bad_file_descriptor);
    EXPECT_NE(after_close_what.find(path), std::string::npos) << after_close_what;
}

TEST_P(FileTest, BadArgumentsThrowInvalidArgumentNamingThem) {
    temp_dir dir("uthreads-file");
    std::vector<std::string> messages;
    run_on_backend([&]() -> ut::task<> {
        auto expect_invalid = [&](ut::task<void> t) -> ut::task<> {
            try {
                co_await t;
                messages.push_back("(no exception)");
            } catch (const std::invalid_argument& e) {
                messages.push_back(e.what());
            }
        };
        auto open = [](std::string p, int flags, unsigned perms) -> ut::task<void> {
            (void)co_await ut::file::open(std::move(p), flags, perms);
        };
        co_await expect_invalid(open("", O_RDONLY, 0666));
        co_await expect_invalid(open(std::string("a\0b", 3), O_RDONLY, 0666));
        co_await expect_invalid(open(dir.file("x"), O_WRONLY | O_CREAT, 010000));
        ut::file f = co_await ut::file::open(dir.file("y"), O_RDWR | O_CREAT, 0600);
        auto read_at_max = [&f]() -> ut::task<void> {
            char c;
            (void)co_await f.read_at(std::numeric_limits<std::uint64_t>::max(),
                                     std::span<char>(&c, 1));
        };
        co_await expect_invalid(read_at_max());
        co_await expect_invalid(f.write_at(std::numeric_limits<std::uint64_t>::max() - 2, "abc"));
    }());
    ASSERT_EQ(messages.size(), 5u);
    EXPECT_NE(messages[0].find("path"), std::string::npos) << messages[0];
    EXPECT_NE(messages[1].find("path"), std::string::npos) << messages[1];
    EXPECT_NE(messages[2].find("perms"), std::string::npos) << messages[2];
    EXPECT_NE(messages[3].find("offset"), std::string::npos) << messages[3];
    EXPECT_NE(messages[4].find("offset"), std::string::npos) << messages[4];
}

}  // namespace

INSTANTIATE_TEST_SUITE_P(AllBackends, FileTest, ::testing::ValuesIn(suite_params()),
                         backend_name{});
INSTANTIATE_TEST_SUITE_P(FourWorkers, FileTest, ::testing::ValuesIn(threaded_params()),
                         backend_name{});

}  // namespace uthreads_conformance
