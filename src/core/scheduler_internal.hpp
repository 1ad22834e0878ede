// Private declarations shared by the files of src/core.
#pragma once

#include <uthreads/detail/core.hpp>
#include <uthreads/to_thread.hpp>

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace uthreads::detail {

/// Report an exception nobody will observe to the unhandled-exception handler.
void report_unhandled(const std::string& name, std::exception_ptr e) noexcept;

/// The runtime's pool for blocking calls (`to_thread`). Threads are started on
/// demand up to a limit and joined when the runtime ends.
class blocking_pool {
public:
    static constexpr std::size_t max_threads = 64;
    blocking_pool() = default;
    ~blocking_pool();
    blocking_pool(const blocking_pool&) = delete;
    blocking_pool& operator=(const blocking_pool&) = delete;

    void submit(blocking_job* job);

private:
    void worker();
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<blocking_job*> queue_;  // guarded by mu_
    std::vector<std::thread> threads_;
    std::size_t idle_ = 0;             // guarded by mu_
    bool stop_ = false;                // guarded by mu_
};

}  // namespace uthreads::detail
