// Which backends this build has. Each backend directory defines its factory;
// this file is the only place that lists them (platform selection lives here,
// never in core).
#include "../core/backend_factories.hpp"

namespace uthreads::backends {
std::unique_ptr<lowlevel::backend> make_epoll_backend();
std::unique_ptr<lowlevel::backend> make_sim_backend();
}  // namespace uthreads::backends

namespace uthreads::detail {

std::span<const backend_factory> backend_factories() {
    static const backend_factory table[] = {
        {"epoll", &backends::make_epoll_backend},
        {"sim", &backends::make_sim_backend},
    };
    return table;
}

}  // namespace uthreads::detail
