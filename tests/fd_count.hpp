// Counting this process's open descriptors, for the leak checks of the unit and
// conformance tests.
#pragma once

#include <filesystem>
#include <system_error>

/// Entries in /proc/self/fd (the directory stream's own descriptor is counted
/// each time, so two counts compare equal exactly when nothing else changed);
/// -1 if /proc cannot be read.
inline long open_fd_count() {
    std::error_code ec;
    long n = 0;
    for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
         it.increment(ec))
        ++n;
    return ec ? -1 : n;
}
