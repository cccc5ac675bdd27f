#include "common/os_error.h"

#include <cerrno>
#include <cstring>

#include <arrow/util/io_util.h>

namespace stratalake {

namespace {

const char* ErrnoName(int err) {
  switch (err) {
    case ENOSPC:
      return "ENOSPC";
    case EDQUOT:
      return "EDQUOT";
    case EFBIG:
      return "EFBIG";
    case EIO:
      return "EIO";
    case EROFS:
      return "EROFS";
    case EACCES:
      return "EACCES";
    case EPERM:
      return "EPERM";
    case ENOENT:
      return "ENOENT";
    case EEXIST:
      return "EEXIST";
    case ENOTDIR:
      return "ENOTDIR";
    case EISDIR:
      return "EISDIR";
    case EMFILE:
      return "EMFILE";
    case ENFILE:
      return "ENFILE";
    case ENAMETOOLONG:
      return "ENAMETOOLONG";
    case EINTR:
      return "EINTR";
    case EBADF:
      return "EBADF";
    case EINVAL:
      return "EINVAL";
    case ENOMEM:
      return "ENOMEM";
    case ESTALE:
      return "ESTALE";
    default:
      return nullptr;
  }
}

}  // namespace

std::string ErrnoText(int err) {
  const char* name = ErrnoName(err);
  std::string text = std::strerror(err);
  return name ? text + " (" + name + ")" : text + " (errno " + std::to_string(err) + ")";
}

int ErrnoOf(const arrow::Status& status) {
  if (status.ok()) return 0;
  return arrow::internal::ErrnoFromStatus(status);
}

arrow::Status IoErrorOnPath(const arrow::Status& status, const std::string& what,
                            const std::string& path) {
  if (status.ok()) return status;
  int err = ErrnoOf(status);
  std::string msg = what + " '" + path + "': " + (err ? ErrnoText(err) : status.message());
  if (err == ENOSPC || err == EDQUOT) {
    msg += "; free space on that disk (or raise the quota) and retry";
  }
  return arrow::Status(status.code(), std::move(msg), status.detail());
}

}  // namespace stratalake
