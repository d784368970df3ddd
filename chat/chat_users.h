/*
 * chat_users — chatd's in-memory copy of the chat users (chat_store), so a
 * REGISTER never waits for PostgreSQL on the loop thread.
 *
 * A helper thread owns the struct chat_store: it loads every user, hands the
 * loop an immutable sorted snapshot through the server's mqueue, then waits
 * on LISTEN chat_users (the store's NOTIFY trigger) and reloads on every
 * change.  When the connection is lost it keeps retrying with backoff
 * (1 s doubling to 30 s) while the loop keeps serving the last snapshot.
 *
 * Snapshots hold HA1 values (secrets): never printed; wiped when freed.
 */
#ifndef CHAT_USERS_H
#define CHAT_USERS_H

#include <stdbool.h>
#include <stddef.h>

#include "chat_store.h"

struct cfg;
struct mqueue;
struct chat_users;

struct chat_user_rec {
	char uri[CHAT_URI_MAX];
	char ha1[CHAT_HA1_HEX];
	bool disabled;
	bool chat_enabled;
	bool im_enabled;
};

enum { CHAT_MQ_USERS = 1, CHAT_MQ_DURABLE = 2 };

/* Open the store, load the first snapshot here (installed before return),
 * start the thread, which pushes later snapshots as (CHAT_MQ_USERS, snap). */
int chat_users_start(const struct cfg *cfg, struct mqueue *mq, struct chat_users **out,
		     char *err, size_t errlen) __attribute__((warn_unused_result));
/* Loop thread: take a snapshot pushed by the thread (frees the old one). */
void chat_users_install(struct chat_users *u, void *snapshot);
/* Loop thread: free a snapshot that could not be installed (shutdown). */
void chat_users_snapshot_free(void *snapshot);
/* Loop thread: lookup by canonical URI; NULL when unknown. */
const struct chat_user_rec *chat_users_find(const struct chat_users *u, const char *uri);
size_t chat_users_count(const struct chat_users *u);
/* Stop the thread (bounded by the store's own timeouts), free everything. */
void chat_users_stop(struct chat_users *u);

#endif
