// File helpers (POSIX).
#define GS_LOG_MODULE "common"
#define _XOPEN_SOURCE 700 // realpath
#include "common/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/log.h"

gs_err gs_read_file(const char *path, size_t cap_nbytes, char **out_data, size_t *out_nbytes)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        GS_LOG_ERROR("could not open \"%s\": %s", path, strerror(errno));
        return GS_EIO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        GS_LOG_ERROR("could not read \"%s\": not a regular file", path);
        close(fd);
        return GS_EIO;
    }
    if ((size_t)st.st_size > cap_nbytes) {
        GS_LOG_ERROR("file \"%s\" is too large: %lld bytes, at most %zu", path,
                     (long long)st.st_size, cap_nbytes);
        close(fd);
        return GS_ETOOBIG;
    }
    size_t n = (size_t)st.st_size;
    char *data = gs_trymalloc(n + 1);
    if (!data) {
        close(fd);
        return GS_ENOMEM;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, data + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            GS_LOG_ERROR("could not read \"%s\": %s", path, r < 0 ? strerror(errno) : "short read");
            gs_free(data);
            close(fd);
            return GS_EIO;
        }
        got += (size_t)r;
    }
    close(fd);
    data[n] = '\0';
    *out_data = data;
    *out_nbytes = n;
    return GS_OK;
}

gs_err gs_mkdir_p(const char *path)
{
    char *p = gs_xstrdup(path);
    size_t len = strlen(p);
    for (size_t i = 1; i <= len; i++) {
        if (p[i] == '/' || p[i] == '\0') {
            char c = p[i];
            p[i] = '\0';
            if (mkdir(p, 0755) != 0 && errno != EEXIST) {
                GS_LOG_ERROR("could not create directory \"%s\": %s", p, strerror(errno));
                gs_free(p);
                return GS_EIO;
            }
            p[i] = c;
        }
    }
    gs_free(p);
    return gs_is_dir(path) ? GS_OK : GS_EIO;
}

static gs_err fsync_dir_of(const char *path)
{
    char *copy = gs_xstrdup(path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    gs_free(copy);
    if (fd < 0)
        return GS_EIO;
    int rc = fsync(fd);
    close(fd);
    return rc == 0 ? GS_OK : GS_EIO;
}

gs_err gs_write_file_atomic(const char *path, const void *data, size_t nbytes)
{
    char *tmp = gs_xasprintf("%s.tmp.%ld", path, (long)getpid());
    gs_err e = GS_EIO;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        GS_LOG_ERROR("could not create \"%s\": %s", tmp, strerror(errno));
        goto out;
    }
    const char *p = data;
    size_t left = nbytes;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            GS_LOG_ERROR("could not write \"%s\": %s", tmp, strerror(errno));
            close(fd);
            unlink(tmp);
            goto out;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        GS_LOG_ERROR("could not flush \"%s\": %s", tmp, strerror(errno));
        unlink(tmp);
        goto out;
    }
    if (rename(tmp, path) != 0) {
        GS_LOG_ERROR("could not rename \"%s\" to \"%s\": %s", tmp, path, strerror(errno));
        unlink(tmp);
        goto out;
    }
    e = fsync_dir_of(path);
out:
    gs_free(tmp);
    return e;
}

int gs_path_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int gs_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

char *gs_path_absolute(const char *path)
{
    if (!path || !*path)
        return gs_xasprintf("%s", path ? path : "");
    char buf[PATH_MAX];
    if (!realpath(path, buf))
        return gs_xasprintf("%s", path);
    return gs_xasprintf("%s", buf);
}

char *gs_path_join(const char *a, const char *b)
{
    size_t la = strlen(a);
    if (la && a[la - 1] == '/')
        return gs_xasprintf("%s%s", a, b);
    return gs_xasprintf("%s/%s", a, b);
}
