// Saying what the operating system reported, in messages that also name the file.
#pragma once

#include <string>

#include <arrow/status.h>

namespace stratalake {

/// strerror plus the symbolic name: "No space left on device (ENOSPC)". An
/// unknown code reads "errno 1234".
std::string ErrnoText(int err);

/// The errno an I/O status carries (arrow's errno detail), or 0.
int ErrnoOf(const arrow::Status& status);

/// `status` (a failed I/O call on `path`) restated as
/// "<what> '<path>': <reason>", the reason being the OS error when the status
/// carries one (ErrnoText) and its message otherwise, followed by a hint for
/// a full disk or quota. The code and the errno detail are kept.
arrow::Status IoErrorOnPath(const arrow::Status& status, const std::string& what,
                            const std::string& path);

}  // namespace stratalake
