// "Owned by the process that made it": objects that hold threads, condition variables,
// connections or object-store clients must never be torn down in a child process that
// inherited them through fork() (a DataLoader worker): their threads do not exist there,
// a condition variable a parent thread waited on blocks forever when destroyed, and a
// client's connections are shared with the parent. Such objects record their owner and,
// outside it, leave their resources alone (leaked until the child exits).
//
// Thread-safety: immutable after construction.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <utility>

namespace chute {

class ProcessOwner {
 public:
  // True in the process that made this object.
  bool InOwner() const { return ::getpid() == pid_; }
  pid_t pid() const { return pid_; }
  // Outside the owner, moves `resource` (a smart pointer or container) onto the heap
  // for good, so that its destructor never runs in this process. Returns whether it did.
  template <typename T>
  bool LeakIfInherited(T& resource) const {
    if (InOwner()) return false;
    (void)new T(std::move(resource));
    return true;
  }

 private:
  pid_t pid_ = ::getpid();
};

}  // namespace chute
