/* Start a command directly inside a cgroup: clone3(CLONE_INTO_CGROUP) + execve.
 *
 * A sandbox's command must be in the sandbox's cgroup before it runs (else its first fork could
 * happen outside, beyond the reach of cgroup.kill). Without this module that takes a launcher
 * (`sh -c 'echo 0 > cgroup.procs && exec "$@"'`): one more execve per command, about as much as
 * running `true` itself. Here the kernel places the child in the cgroup as it creates it.
 *
 * The child shares the parent's memory until it execs (CLONE_VM | CLONE_VFORK, as posix_spawn
 * does), runs on its own small stack and makes only async-signal-safe calls: signal handlers
 * reset, setsid, dup2, chdir, close_range, execve. A failure is reported through memory the
 * parent reads once the child has exec'd or exited. Where the kernel has no clone3 (or a seccomp filter
 * refuses it) spawn() raises OSError and the caller falls back to the launcher.
 *
 * Optional: the package works without it (see _cloned.py).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif

struct hermes_clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
        set_tid_size, cgroup;
};

/* What the child needs, and where it reports how it failed (shared memory under CLONE_VM). */
struct child {
    char *const *executables;
    char *const *argv;
    char *const *envp;
    const char *cwd;
    int fds[3];
    sigset_t mask; /* the parent's signal mask, the child's once its handlers are reset */
    int failed_step; /* 0: exec'd; 1: setsid/dup2; 2: chdir; 3: execve */
    int failed_errno;
};

static int child_main(void *p) {
    struct child *c = p;
    /* Handlers of the parent must not run here (they would touch the parent's memory): every
     * caught signal goes back to its default; SIGPIPE and SIGXFSZ too (Python ignores them, a
     * command expects them), like subprocess's restore_signals. Then the mask the parent had. */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < _NSIG; sig++) {
        struct sigaction old;
        if (sig == SIGKILL || sig == SIGSTOP || sigaction(sig, NULL, &old) != 0) continue;
        if (old.sa_handler != SIG_IGN || sig == SIGPIPE || sig == SIGXFSZ) sigaction(sig, &dfl, NULL);
    }
    sigprocmask(SIG_SETMASK, &c->mask, NULL);

    if (setsid() < 0) goto fail_setup;
    /* Move the given fds above 2 first, so that dup2 onto 0..2 cannot clobber one of them. */
    int fds[3];
    for (int i = 0; i < 3; i++) {
        fds[i] = c->fds[i];
        if (fds[i] >= 0 && fds[i] < 3) {
            fds[i] = fcntl(fds[i], F_DUPFD, 3);
            if (fds[i] < 0) goto fail_setup;
        }
    }
    for (int i = 0; i < 3; i++) {
        if (fds[i] >= 0 && dup2(fds[i], i) < 0) goto fail_setup;
    }
    if (c->cwd != NULL && chdir(c->cwd) != 0) {
        c->failed_step = 2;
        c->failed_errno = errno;
        return 127;
    }
    /* Nothing of the driver's beyond 0..2 (close_range: Linux 5.9+; else one by one). */
    if (syscall(SYS_close_range, 3U, ~0U, 0U) != 0) {
        long most = sysconf(_SC_OPEN_MAX);
        for (long fd = 3; fd < (most > 0 && most < 65536 ? most : 65536); fd++) close((int)fd);
    }
    int saved = 0;
    for (char *const *exe = c->executables; *exe != NULL; exe++) {
        execve(*exe, c->argv, c->envp);
        if (errno != ENOENT && errno != ENOTDIR && saved == 0) saved = errno;
    }
    c->failed_step = 3;
    c->failed_errno = saved ? saved : errno;
    return 127;
fail_setup:
    c->failed_step = 1;
    c->failed_errno = errno;
    return 127;
}

#if defined(__x86_64__) && !defined(HERMES_CLONE_NO_VM)
/* clone3 with the child on its own stack: the child calls fn(arg) there and exits with its
 * result (glibc has no public clone3 wrapper). rdi=args rsi=size rdx=fn rcx=arg; r8/r9 survive
 * the syscall in both processes. */
long hermes_clone3(struct hermes_clone_args *args, size_t size, int (*fn)(void *), void *arg);
__asm__(
    ".text\n"
    ".p2align 4\n"
    ".type hermes_clone3,@function\n"
    "hermes_clone3:\n"
    "    mov %rdx, %r8\n"
    "    mov %rcx, %r9\n"
    "    mov $435, %eax\n"
    "    syscall\n"
    "    test %rax, %rax\n"
    "    jz 1f\n"
    "    ret\n"
    "1:  xor %ebp, %ebp\n"
    "    mov %r9, %rdi\n"
    "    call *%r8\n"
    "    mov %eax, %edi\n"
    "    mov $60, %eax\n" /* SYS_exit */
    "    syscall\n"
    "    hlt\n"
    ".size hermes_clone3, .-hermes_clone3\n");
#define SHARED_VM 1
#else
#define SHARED_VM 0
#endif

#define CHILD_STACK (256 * 1024)

static char **to_cstrings(PyObject *seq, const char *what) {
    PyObject *fast = PySequence_Fast(seq, what);
    if (fast == NULL) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    char **out = PyMem_Calloc((size_t)n + 1, sizeof(char *));
    if (out == NULL) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(fast, i);
        char *s;
        Py_ssize_t len;
        if (!PyBytes_Check(item) || PyBytes_AsStringAndSize(item, &s, &len) < 0 || (size_t)len != strlen(s)) {
            if (!PyErr_Occurred())
                PyErr_Format(PyBytes_Check(item) ? PyExc_ValueError : PyExc_TypeError, "%s: bytes without NUL expected",
                             what);
            PyMem_Free(out);
            Py_DECREF(fast);
            return NULL;
        }
        out[i] = s; /* borrowed: the caller keeps the sequence alive */
    }
    out[n] = NULL;
    Py_DECREF(fast);
    return out;
}

PyDoc_STRVAR(spawn_doc,
"spawn(executables, argv, envp, cwd, cgroup_fd, stdin_fd, stdout_fd, stderr_fd)\n"
"    -> (pid, pidfd, failed_step, errno)\n\n"
"Start argv (trying each path in executables) in a new session, with the three fds as its\n"
"stdin/stdout/stderr (-1: inherit), in cwd, inside the cgroup v2 directory open as cgroup_fd\n"
"(-1: the caller's cgroup). When it could not start, pid is 0 (the child is reaped) and\n"
"failed_step says where: 1 session/fds, 2 chdir, 3 execve. OSError if clone3 itself failed.");

static PyObject *spawn(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *py_exes, *py_argv, *py_envp, *py_cwd;
    int cgroup_fd, in_fd, out_fd, err_fd;
    if (!PyArg_ParseTuple(args, "OOOOiiii", &py_exes, &py_argv, &py_envp, &py_cwd, &cgroup_fd, &in_fd,
                          &out_fd, &err_fd))
        return NULL;
    if (py_cwd != Py_None && !PyBytes_Check(py_cwd)) {
        PyErr_SetString(PyExc_TypeError, "cwd: bytes or None expected");
        return NULL;
    }
    char **exes = NULL, **argv = NULL, **envp = NULL;
    PyObject *result = NULL;
    if ((exes = to_cstrings(py_exes, "executables")) == NULL || (argv = to_cstrings(py_argv, "argv")) == NULL ||
        (envp = to_cstrings(py_envp, "envp")) == NULL)
        goto done;
    if (exes[0] == NULL || argv[0] == NULL) {
        PyErr_SetString(PyExc_ValueError, "executables and argv must not be empty");
        goto done;
    }
    struct child c = {exes, argv, envp, py_cwd == Py_None ? NULL : PyBytes_AS_STRING(py_cwd),
                      {in_fd, out_fd, err_fd}, {{0}}, 0, 0};
    int pidfd = -1;
    struct hermes_clone_args ca;
    memset(&ca, 0, sizeof ca);
    ca.flags = CLONE_VFORK | CLONE_PIDFD | (cgroup_fd >= 0 ? CLONE_INTO_CGROUP : 0);
    ca.pidfd = (uint64_t)(uintptr_t)&pidfd;
    ca.exit_signal = SIGCHLD;
    ca.cgroup = cgroup_fd >= 0 ? (uint64_t)cgroup_fd : 0;
    long pid;
    int clone_errno = 0;
    sigset_t all, old;
    sigfillset(&all);
    Py_BEGIN_ALLOW_THREADS
    /* No signal may reach the child before it has reset the handlers it shares with us. */
    pthread_sigmask(SIG_SETMASK, &all, &old);
    c.mask = old;
#if SHARED_VM
    void *stack = mmap(NULL, CHILD_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) {
        pid = -1;
        clone_errno = errno;
    } else {
        ca.flags |= CLONE_VM;
        ca.stack = (uint64_t)(uintptr_t)stack;
        ca.stack_size = CHILD_STACK;
        pid = hermes_clone3(&ca, sizeof ca, child_main, &c);
        if (pid < 0) {
            clone_errno = (int)-pid;
            pid = -1;
        }
        munmap(stack, CHILD_STACK);
    }
#else
    /* Elsewhere: a copy of our memory (no CLONE_VM; the child goes on where clone3 returned),
     * with its report in a shared anonymous page. */
    struct child *shared = mmap(NULL, sizeof c, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) {
        pid = -1;
        clone_errno = errno;
    } else {
        *shared = c;
        pid = syscall(SYS_clone3, &ca, sizeof ca);
        if (pid == 0) _exit(child_main(shared));
        if (pid < 0) clone_errno = errno;
        c.failed_step = shared->failed_step;
        c.failed_errno = shared->failed_errno;
        munmap(shared, sizeof c);
    }
#endif
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid > 0 && c.failed_step != 0) {
        int status;
        while (waitpid((pid_t)pid, &status, 0) < 0 && errno == EINTR) {
        }
        close(pidfd);
    }
    Py_END_ALLOW_THREADS
    if (pid < 0) {
        errno = clone_errno;
        PyErr_SetFromErrno(PyExc_OSError);
        goto done;
    }
    result = c.failed_step ? Py_BuildValue("(iiii)", 0, -1, c.failed_step, c.failed_errno)
                           : Py_BuildValue("(liii)", pid, pidfd, 0, 0);
done:
    PyMem_Free(exes);
    PyMem_Free(argv);
    PyMem_Free(envp);
    return result;
}

static PyMethodDef methods[] = {
    {"spawn", spawn, METH_VARARGS, spawn_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "hermes_core.sandbox._clone",
    "clone3(CLONE_INTO_CGROUP) + execve: a command starts inside a cgroup.", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__clone(void) { return PyModule_Create(&module); }
