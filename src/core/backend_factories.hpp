// The table of compiled-in backends (defined in src/platform/backend_registry.cpp).
#pragma once

#include <uthreads/lowlevel/backend.hpp>

#include <memory>
#include <span>

namespace uthreads::detail {

struct backend_factory {
    const char* name;
    std::unique_ptr<lowlevel::backend> (*make)();
    /// Whether this machine can run it (nullptr: always). A backend that is
    /// compiled in but refused here is left out of available_backends(); asking
    /// for it by name still gives its own error, which says why.
    bool (*usable)() noexcept = nullptr;
};

/// Every backend compiled into this build, the platform default first.
std::span<const backend_factory> backend_factories();

/// Backends this build knows but could not compile, with the missing library.
struct missing_backend {
    const char* name;
    const char* library;
};
std::span<const missing_backend> missing_backends();

}  // namespace uthreads::detail
