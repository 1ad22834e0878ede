#include <uthreads/channel.hpp>
#include <uthreads/semaphore.hpp>

#include <stdexcept>
#include <string>

namespace uthreads {

semaphore::semaphore(std::ptrdiff_t initial) : count_(initial) {
    if (initial < 0)
        throw std::invalid_argument("uthreads::semaphore: initial count must not be negative (got " +
                                    std::to_string(initial) + ")");
}

namespace detail {
void throw_bad_capacity() {
    throw std::invalid_argument("uthreads::channel: capacity must not be negative");
}
}  // namespace detail

}  // namespace uthreads
