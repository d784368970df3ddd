/*
 * chat_files — the file service; see chat_files.h.
 *
 * libmicrohttpd calls the access handler several times per request: once
 * with the headers (we check method, path, token and a declared size, and
 * may answer at once), then with each piece of the body (written to the
 * temporary file and hashed), then once more with no data (we publish the
 * file, run the hook, answer).  struct xfer is that request's state; the
 * completion callback frees it and removes a temporary file left behind.
 */
#include "chat_files.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <microhttpd.h>

#include "chat_rooms.h"
#include "cv_log.h"
#include "cv_util.h"

#define DEFAULT_MAX_UPLOAD (100LL * 1024 * 1024)

struct chat_files {
	struct MHD_Daemon *d;
	struct chat_rooms *rooms;     /* used only by the daemon's thread */
	char store[PATH_MAX];
	int64_t max_upload;
	chat_files_hook hook;
	void *hook_arg;
	uint16_t port;
};

struct xfer {
	struct chat_token tok;
	int fd;                       /* upload: the temporary file */
	char tmp[PATH_MAX];
	struct cv_sha256 *sha;
	int64_t size;
	bool too_large;
	bool io_error;
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *body)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body,
								 MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static void xfer_free(struct xfer *x)
{
	if (!x)
		return;
	if (x->fd >= 0)
		close(x->fd);
	if (x->tmp[0])
		unlink(x->tmp);
	cv_sha256_free(x->sha);
	free(x);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	(void)cls; (void)c; (void)toe;
	xfer_free(*con_cls);
	*con_cls = NULL;
}

/* "/files/<guid>/<name>" → guid and name (pointers into a copy in buf). */
static bool split_path(const char *url, char *buf, size_t buflen, const char **guid,
		       const char **name)
{
	char *slash;

	if (strncmp(url, "/files/", 7) != 0 || strlen(url + 7) >= buflen)
		return false;
	strcpy(buf, url + 7);
	slash = strchr(buf, '/');
	if (!slash || slash == buf || !slash[1])
		return false;
	*slash = '\0';
	*guid = buf;
	*name = slash + 1;
	return true;
}

/* First call of a request: everything decided from the headers. */
static enum MHD_Result begin(struct chat_files *f, struct MHD_Connection *c, const char *url,
			     bool upload, void **con_cls)
{
	char path[PATH_MAX], err[CHAT_ROOMS_ERRLEN];
	const char *guid, *name, *token, *len;
	struct xfer *x;
	int rc;

	if (!split_path(url, path, sizeof(path), &guid, &name))
		return reply(c, MHD_HTTP_NOT_FOUND, "not found: use /files/<room>/<name>?token=T\n");
	token = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "token");
	if (!token || !*token)
		return reply(c, MHD_HTTP_UNAUTHORIZED, "token required\n");
	len = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (upload && len && strtoll(len, NULL, 10) > f->max_upload)
		return reply(c, MHD_HTTP_CONTENT_TOO_LARGE, "file too large\n");
	if (!(x = calloc(1, sizeof(*x))))
		return MHD_NO;
	x->fd = -1;
	rc = chat_token_consume(f->rooms, upload ? CHAT_TOKEN_UPLOAD : CHAT_TOKEN_DOWNLOAD, token,
				&x->tok, err, sizeof(err));
	if (rc == 0 && (strcmp(x->tok.guid, guid) != 0 || strcmp(x->tok.name, name) != 0)) {
		snprintf(err, sizeof(err), "token is for another file");
		rc = -EACCES;
	}
	if (rc != 0) {
		cv_info("files", "%s %s: %s", upload ? "PUT" : "GET", url, err);
		free(x);
		return rc == -EACCES ? reply(c, MHD_HTTP_FORBIDDEN, "token refused\n")
				     : reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "try again\n");
	}
	*con_cls = x;
	if (!upload)
		return MHD_YES;
	/* f->store is at most PATH_MAX - 80 bytes (chat_files_start). */
	if (snprintf(x->tmp, sizeof(x->tmp), "%s/.upload.XXXXXX", f->store) >= (int)sizeof(x->tmp))
		x->tmp[0] = '\0';
	else
		x->fd = mkostemp(x->tmp, O_CLOEXEC);   /* mode 0600 */
	x->sha = cv_sha256_new();
	if (x->fd < 0 || !x->sha) {
		cv_err("files", "temporary file in %s: %s", f->store, strerror(errno));
		if (x->fd < 0)
			x->tmp[0] = '\0';
		x->io_error = true;
	}
	return MHD_YES;
}

/* Upload complete: make the file durable under its hash. */
static int publish(struct chat_files *f, struct xfer *x, char sha[CV_SHA256_HEX])
{
	char final[PATH_MAX];
	struct stat st;

	cv_sha256_final_hex(x->sha, sha);
	if (fchmod(x->fd, 0440) != 0 || fsync(x->fd) != 0)
		return -errno;
	close(x->fd);
	x->fd = -1;
	if (snprintf(final, sizeof(final), "%s/%s", f->store, sha) >= (int)sizeof(final))
		return -ENAMETOOLONG;
	if (stat(final, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == x->size) {
		/* The same content is stored already: keep that one. */
		unlink(x->tmp);
	} else if (rename(x->tmp, final) != 0) {
		return -errno;
	}
	x->tmp[0] = '\0';
	return cv_fsync_dir(f->store);
}

static enum MHD_Result finish_upload(struct chat_files *f, struct MHD_Connection *c, struct xfer *x)
{
	char sha[CV_SHA256_HEX], err[CHAT_ROOMS_ERRLEN];
	int rc;

	if (x->too_large)
		return reply(c, MHD_HTTP_CONTENT_TOO_LARGE, "file too large\n");
	if (x->io_error)
		return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "could not store the file\n");
	if ((rc = publish(f, x, sha)) != 0) {
		cv_err("files", "store %s: %s", x->tok.name, strerror(-rc));
		return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "could not store the file\n");
	}
	if (f->hook(f->hook_arg, CHAT_FILE_UPLOAD, x->tok.user, x->tok.room, x->tok.name, x->size,
		    sha) != 0)
		return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "not recorded, try again\n");
	if ((rc = chat_file_record(f->rooms, MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
									"token"),
				   x->tok.room, x->tok.name, sha, x->size, x->tok.user, err,
				   sizeof(err))) != 0) {
		cv_err("files", "%s", err);
		return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "not recorded, try again\n");
	}
	return reply(c, MHD_HTTP_CREATED, "stored\n");
}

static enum MHD_Result download(struct chat_files *f, struct MHD_Connection *c, struct xfer *x)
{
	char path[PATH_MAX];
	struct MHD_Response *r;
	struct stat st;
	enum MHD_Result ret;
	int fd;

	if (strlen(x->tok.sha256) != 64 ||
	    snprintf(path, sizeof(path), "%s/%s", f->store, x->tok.sha256) >= (int)sizeof(path))
		return reply(c, MHD_HTTP_NOT_FOUND, "no such file\n");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		cv_err("files", "%s (%s in %s): %s", path, x->tok.name, x->tok.room,
		       fd < 0 ? strerror(errno) : "not a regular file");
		if (fd >= 0)
			close(fd);
		return reply(c, MHD_HTTP_NOT_FOUND, "no such file\n");
	}
	if (f->hook(f->hook_arg, CHAT_FILE_DOWNLOAD, x->tok.user, x->tok.room, x->tok.name,
		    (int64_t)st.st_size, x->tok.sha256) != 0) {
		close(fd);
		return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "not recorded, try again\n");
	}
	/* The response owns fd from here. */
	if (!(r = MHD_create_response_from_fd((size_t)st.st_size, fd))) {
		close(fd);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
	ret = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *data,
				  size_t *data_size, void **con_cls)
{
	struct chat_files *f = cls;
	struct xfer *x = *con_cls;
	bool upload = strcmp(method, MHD_HTTP_METHOD_PUT) == 0;

	(void)version;
	if (!x) {
		if (!upload && strcmp(method, MHD_HTTP_METHOD_GET) != 0)
			return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "PUT or GET\n");
		return begin(f, c, url, upload, con_cls);
	}
	if (!upload)
		return download(f, c, x);
	if (*data_size > 0) {
		size_t n = *data_size;

		*data_size = 0;
		x->size += (int64_t)n;
		if (x->size > f->max_upload) {
			/* Undeclared (chunked) body over the limit: drop the rest;
			 * past twice the limit, drop the connection too. */
			x->too_large = true;
			return x->size > 2 * f->max_upload ? MHD_NO : MHD_YES;
		}
		if (!x->io_error && !x->too_large) {
			cv_sha256_update(x->sha, data, n);
			if (cv_write_all(x->fd, data, n) != 0) {
				cv_err("files", "write %s: %s", x->tmp, strerror(errno));
				x->io_error = true;
			}
		}
		return MHD_YES;
	}
	return finish_upload(f, c, x);
}

int chat_files_start(const struct chat_files_opts *o, struct chat_files **out, char *err,
		     size_t errlen)
{
	struct chat_rooms_opts ro = { .cfg = o->cfg, .application = "chatvault-files" };
	const char *store = o->file_store ? o->file_store : o->cfg->deliver.file_store;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(o->port) };
	const union MHD_DaemonInfo *info;
	struct chat_files *f;
	int rc;

	*out = NULL;
	if (!o->on_transfer || !store || !*store) {
		snprintf(err, errlen, "file service: on_transfer and a file store are required");
		return -EINVAL;
	}
	if (inet_pton(AF_INET, o->bind_addr ? o->bind_addr : "127.0.0.1", &sa.sin_addr) != 1) {
		snprintf(err, errlen, "file service: bind address %s: not an IPv4 address",
			 o->bind_addr);
		return -EINVAL;
	}
	if (!(f = calloc(1, sizeof(*f)))) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	f->max_upload = o->max_upload > 0 ? o->max_upload : DEFAULT_MAX_UPLOAD;
	f->hook = o->on_transfer;
	f->hook_arg = o->hook_arg;
	if (snprintf(f->store, sizeof(f->store), "%s", store) >= (int)sizeof(f->store) - 80) {
		snprintf(err, errlen, "file store path too long: %s", store);
		rc = -ENAMETOOLONG;
		goto fail;
	}
	if ((rc = cv_mkdir_p(f->store, 0750)) != 0) {
		snprintf(err, errlen, "file store %s: %s", f->store, strerror(-rc));
		goto fail;
	}
	if ((rc = chat_rooms_open(&ro, &f->rooms, err, errlen)) != 0)
		goto fail;
	f->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
				on_request, f,
				MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
				MHD_OPTION_CONNECTION_LIMIT, o->max_connections ? o->max_connections : 64u,
				MHD_OPTION_CONNECTION_TIMEOUT, 60u,
				MHD_OPTION_NOTIFY_COMPLETED, on_completed, f,
				MHD_OPTION_END);
	if (!f->d) {
		snprintf(err, errlen, "file service: cannot listen on %s:%u",
			 o->bind_addr ? o->bind_addr : "127.0.0.1", o->port);
		rc = -EADDRINUSE;
		goto fail;
	}
	info = MHD_get_daemon_info(f->d, MHD_DAEMON_INFO_BIND_PORT);
	f->port = info ? info->port : o->port;
	*out = f;
	return 0;
fail:
	chat_rooms_close(f->rooms);
	free(f);
	return rc;
}

uint16_t chat_files_port(const struct chat_files *f)
{
	return f->port;
}

void chat_files_stop(struct chat_files *f)
{
	if (!f)
		return;
	if (f->d)
		MHD_stop_daemon(f->d);
	chat_rooms_close(f->rooms);
	free(f);
}
