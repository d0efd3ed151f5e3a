// libseccomp (Debian's libseccomp-dev), for the per-thread system call allow-lists.
#include <seccomp.h>
