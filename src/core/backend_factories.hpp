// The table of compiled-in backends (defined in src/platform/backend_registry.cpp).
#pragma once

#include <uthreads/lowlevel/backend.hpp>

#include <memory>
#include <span>

namespace uthreads::detail {

struct backend_factory {
    const char* name;
    std::unique_ptr<lowlevel::backend> (*make)();
};

/// Every backend compiled into this build, the platform default first.
std::span<const backend_factory> backend_factories();

}  // namespace uthreads::detail
