/* Force-included (-include) when compiling SQLite's amalgamation for
 * wasm32-wasi. WASI has no file modes, owners or POSIX advisory locks:
 * fchmod/fchown are no-ops (geteuid() != 0, so SQLite never tries to chown),
 * and the F_*LK constants only let os_unix.c compile: the default VFS is
 * "unix-none" (see build-deps.sh), which never calls fcntl() to lock. */
#include <sys/types.h>
#include <fcntl.h>
#ifndef F_GETLK
#define F_GETLK 5
#define F_SETLK 6
#define F_SETLKW 7
#endif
#ifndef F_RDLCK
#define F_RDLCK 0
#define F_WRLCK 1
#define F_UNLCK 2
#endif
static int terrarium_fchmod(int fd, mode_t mode) { (void)fd; (void)mode; return 0; }
static int terrarium_fchown(int fd, uid_t uid, gid_t gid) { (void)fd; (void)uid; (void)gid; return 0; }
static uid_t terrarium_geteuid(void) { return 1000; }
#define fchmod terrarium_fchmod
#define fchown terrarium_fchown
#define geteuid terrarium_geteuid
