/*
 * chat_files — the persistent chat file service: HTTP PUT and GET of room
 * attachments with single-use tokens (libmicrohttpd); docs/PCHAT.md.
 *
 *   PUT /files/<room-guid>/<name>?token=T   body = the file  → 201
 *   GET /files/<room-guid>/<name>?token=T                     → 200 + the file
 *
 * T comes from the Channel service's rpl:getftok (chat_token_issue), is
 * bound to one user, room, file name and direction, valid 30 minutes, and
 * consumed atomically on first use.  Answers: 401 no token; 403 token
 * unknown, used, expired, for the other direction or another file; 404
 * not a /files/<guid>/<name> path (405 other methods); 413 body over
 * max_upload; 503 the database or the on_transfer hook failed (retry with
 * a new token); 500 a local I/O error.
 *
 * Files are stored by content, as <file_store>/<sha256> (mode 0440),
 * exactly where the archive adapter looks up an event's files[].sha256:
 * the body streams into a 0600 temporary file in the store while it is
 * hashed, is fsynced, then renamed (or dropped when that content is
 * already stored) and the directory fsynced.
 *
 * on_transfer is called once per successful transfer, before the client
 * is answered (an upload: after the file is durable, before its 201; a
 * download: before the first byte).  It is where the server emits the
 * chat.file.upload / chat.file.download compliance event; it returns 0
 * only once that event is durable, anything else answers 503 — so no
 * transfer is acknowledged without an archive trail.  Only after the hook
 * agreed is an upload recorded in pchat.files (downloadable).
 *
 * Threading: one internal libmicrohttpd thread serves every connection and
 * runs the hook and the (blocking) database statements on its own
 * connection; chat_files_start/stop are called from one other thread.
 */
#ifndef CHAT_FILES_H
#define CHAT_FILES_H

#include <stdint.h>

#include "cfg.h"

enum chat_file_dir { CHAT_FILE_UPLOAD = 0, CHAT_FILE_DOWNLOAD = 1 };

/* Returns 0 once the transfer's compliance event is durable. */
typedef int (*chat_files_hook)(void *arg, enum chat_file_dir dir, const char *user,
			       const char *room, const char *name, int64_t size,
			       const char *sha256);

struct chat_files_opts {
	const struct cfg *cfg;        /* db (own connection), deliver.file_store */
	const char *file_store;       /* NULL: cfg->deliver.file_store */
	const char *bind_addr;        /* IPv4 address; NULL: 127.0.0.1 */
	uint16_t port;                /* 0: any free port (see chat_files_port) */
	int64_t max_upload;           /* bytes; 0: 100 MiB */
	unsigned max_connections;     /* 0: 64 */
	chat_files_hook on_transfer;  /* required */
	void *hook_arg;
};

struct chat_files;

int chat_files_start(const struct chat_files_opts *o, struct chat_files **out, char *err,
		     size_t errlen) __attribute__((warn_unused_result));
/* The port the service listens on. */
uint16_t chat_files_port(const struct chat_files *f);
/* Stop serving (connections in progress are closed) and free.  NULL-safe. */
void chat_files_stop(struct chat_files *f);

#endif
