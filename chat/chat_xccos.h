/*
 * chat_xccos — the XCCOS codec of the persistent chat server (docs/PCHAT.md).
 *
 * XCCOS is the XML a Group Chat client and the Lookup/Channel services
 * exchange in the bodies of SIP INFO messages:
 *
 *   <xccos ver="1" envid="N" xmlns="urn:parlano:xml:ns:xccos">
 *     <cmd id="cmd:join" seqid="1"><data><chanid key="0" domain="d" value="g"/></data></cmd>
 *   </xccos>
 *
 * Decoder: chat_xccos_parse() reads one envelope holding one cmd, rpl, ntc
 * or grpchat element into a struct chat_xccos_msg, with libexpat.  The bytes
 * come from any SIP client, so it is strict and bounded: a DOCTYPE or an
 * entity declaration stops the parser (no billion laughs, no XXE; external
 * entities are never resolved), and depth, element count, attribute count
 * and length, item counts and total size are limited.  The result is an
 * XCCOS response code the server can answer with:
 *
 *   0    parsed; the command is known and has the data it needs
 *   400  malformed: not well-formed XML, not an XCCOS envelope, a DOCTYPE or
 *        entity declaration, too deep, too many attributes on an element,
 *        a bad number, a known command without its required data
 *   413  too large: the envelope, an attribute value, the text, the element
 *        count or the number of chanid/pref items over the limit
 *   501  well-formed, but an unknown command id (the msg keeps kind, id,
 *        seqid and envid so the reply can name the command)
 *   -ENOMEM
 *
 * Encoder: appends XML to a struct cv_buf: envelopes, replies (several per
 * envelope), notices, grpchat fan-out, and the data items (uib, sib,
 * chanib, msg, pref, inv, token).  Every text and attribute value is
 * escaped and must be valid UTF-8 without the control characters XML 1.0
 * forbids (-EINVAL otherwise), so the output is always well-formed.
 *
 * No global state; every call is reentrant.
 */
#ifndef CHAT_XCCOS_H
#define CHAT_XCCOS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cv_util.h"

#define CHAT_XCCOS_NS "urn:parlano:xml:ns:xccos"
#define CHAT_XCCOS_ERRLEN 256

enum chat_xccos_code {
	CHAT_XCCOS_OK = 200,
	CHAT_XCCOS_MALFORMED = 400,
	CHAT_XCCOS_UNAUTHORIZED = 401,
	CHAT_XCCOS_FORBIDDEN = 403,
	CHAT_XCCOS_NOT_FOUND = 404,
	CHAT_XCCOS_TOO_LARGE = 413,
	CHAT_XCCOS_SERVER_ERROR = 500,
	CHAT_XCCOS_UNKNOWN_CMD = 501,
	CHAT_XCCOS_BUSY = 503,
};

enum chat_xccos_kind {
	CHAT_XCCOS_CMD = 1,
	CHAT_XCCOS_RPL,
	CHAT_XCCOS_NTC,
	CHAT_XCCOS_GRPCHAT,
};

/* The commands a client sends (cmd) and a chat post (grpchat). */
enum chat_xccos_cmd {
	CHAT_CMD_UNKNOWN = 0,
	CHAT_CMD_REQURI,
	CHAT_CMD_GETSERVERINFO,
	CHAT_CMD_GETPREF,
	CHAT_CMD_SETPREF,
	CHAT_CMD_GETASSOCIATIONS,
	CHAT_CMD_CHANSRCH,
	CHAT_CMD_JOIN,
	CHAT_CMD_BJOIN,
	CHAT_CMD_PART,
	CHAT_CMD_BCCONTEXT,
	CHAT_CMD_GETINV,
	CHAT_CMD_GETFUTOK,
	CHAT_CMD_GETFDTOK,
	CHAT_CMD_GRPCHAT,
};

struct chat_xccos_limits {
	size_t max_bytes;      /* whole envelope (413); default 65536 */
	int max_depth;         /* element nesting (400); default 8 */
	size_t max_elements;   /* elements in the envelope (413); default 1024 */
	int max_attrs;         /* attributes on one element (400); default 16 */
	size_t max_attr_len;   /* one attribute value, bytes (413); default 2048 */
	size_t max_text;       /* chat/resp text, bytes (413); default 32768 */
	size_t max_items;      /* chanid or pref elements (413); default 100 */
};
extern const struct chat_xccos_limits chat_xccos_default_limits;

struct chat_xccos_chanid {
	int64_t key;
	char *domain;
	char *value;           /* the room's guid: ma-chan://<domain>/<value> */
};

struct chat_xccos_pref {
	char *label;
	int64_t seqid;         /* -1 when absent */
	char *content;         /* base64 as sent; NULL when absent */
};

/* One parsed envelope.  Strings are owned (NUL-terminated UTF-8) and NULL
 * when absent; chat_xccos_msg_clear() frees them. */
struct chat_xccos_msg {
	enum chat_xccos_kind kind;
	enum chat_xccos_cmd cmd;   /* CMD, GRPCHAT; CHAT_CMD_UNKNOWN otherwise */
	int64_t envid;
	char *id;                  /* "cmd:join", "rpl:join", "ntc:part", "grpchat" */
	int64_t seqid;             /* 0 when absent */

	struct chat_xccos_chanid *chanids;  /* join, bjoin */
	size_t nchanids;
	struct {                   /* first chanib: part, bccontext (uri) */
		char *uri, *name, *description, *topic;
	} chanib;
	struct {                   /* chansrch */
		char *qtype, *criteria;
	} qib;
	int64_t bcq_last;          /* bccontext <bcq><last cnt="N"/>; -1 absent */
	struct chat_xccos_pref *prefs;      /* getpref, setpref */
	size_t nprefs;
	struct {                   /* getfutok, getfdtok */
		char *channel_uri, *file_url;
	} ftdb;
	struct {                   /* getinv */
		char *invite_id, *domain;
	} inv;
	struct {                   /* grpchat */
		char *chan_uri, *author, *ts, *text;
	} grpchat;
	struct {                   /* rpl */
		int code;              /* <resp code>, 0 absent */
		char *text;
		int64_t cmd_envid, cmd_seqid;   /* <commandid>, -1 absent */
	} resp;
};

/*
 * Parse one envelope of len bytes (need not be NUL-terminated).  lim NULL
 * means chat_xccos_default_limits.  Returns 0, a code above with a reason in
 * err, or -ENOMEM.  *out is cleared first; on 501 it keeps kind, id, seqid
 * and envid, on any other failure it is left cleared.
 */
int chat_xccos_parse(const char *buf, size_t len, const struct chat_xccos_limits *lim,
		     struct chat_xccos_msg *out, char *err, size_t errlen)
	__attribute__((warn_unused_result));
void chat_xccos_msg_clear(struct chat_xccos_msg *m);

/* "requri" for CHAT_CMD_REQURI …, "grpchat"; NULL for UNKNOWN. */
const char *chat_xccos_cmd_name(enum chat_xccos_cmd c);
/* The reply's name: the command's, except getserverinfo → "getservinfo"
 * and getfutok/getfdtok → "getftok" (what clients expect). */
const char *chat_xccos_reply_name(enum chat_xccos_cmd c);
/* "SUCCESS_OK", "ERR_MALFORMED", … for a code above. */
const char *chat_xccos_code_text(int code);
/* "ma-chan://<domain>/<value>" into out; -EINVAL when a part is empty or
 * contains '/', -ENAMETOOLONG when it does not fit. */
int chat_xccos_chanid_uri(const struct chat_xccos_chanid *c, char *out, size_t outlen)
	__attribute__((warn_unused_result));

/* ---- encoder: every function appends to b; 0, -EINVAL (invalid text),
 * -ENOMEM.  On error b may hold a partial element: reset it. */

/* <xccos ver="1" envid="N" xmlns="urn:parlano:xml:ns:xccos"> … </xccos> */
int chat_xccos_env_begin(struct cv_buf *b, int64_t envid) __attribute__((warn_unused_result));
int chat_xccos_env_end(struct cv_buf *b) __attribute__((warn_unused_result));

/* <rpl id="rpl:NAME" seqid="S"><commandid seqid="CS" envid="CE"/>
 * <resp code="C">TEXT</resp><data> … </data></rpl>  (NAME from
 * chat_xccos_reply_name, TEXT from chat_xccos_code_text) */
int chat_xccos_rpl_begin(struct cv_buf *b, const char *name, int64_t seqid, int64_t cmd_seqid,
			 int64_t cmd_envid, int code) __attribute__((warn_unused_result));
int chat_xccos_rpl_end(struct cv_buf *b) __attribute__((warn_unused_result));

/* <ntc id="ntc:NAME" seqid="S"><data> … </data></ntc> */
int chat_xccos_ntc_begin(struct cv_buf *b, const char *name, int64_t seqid)
	__attribute__((warn_unused_result));
int chat_xccos_ntc_end(struct cv_buf *b) __attribute__((warn_unused_result));

/* A chat message: fan-out (grpchat) and history (msg). */
struct chat_xccos_chat {
	const char *chan_uri;
	const char *author;
	const char *ts;        /* ISO 8601 UTC; omitted when NULL */
	int64_t msgid;         /* the message's id in the room; omitted when < 0 */
	const char *text;
};
/* <grpchat id="grpchat" seqid="S" chanUri author ts><chat>TEXT</chat></grpchat> */
int chat_xccos_put_grpchat(struct cv_buf *b, int64_t seqid, const struct chat_xccos_chat *c)
	__attribute__((warn_unused_result));
/* <msg id="grpchat" chanUri author ts msgid><chat>TEXT</chat></msg> (bccontext) */
int chat_xccos_put_msg(struct cv_buf *b, const struct chat_xccos_chat *c)
	__attribute__((warn_unused_result));

/* <uib uri="U"/> */
int chat_xccos_put_uib(struct cv_buf *b, const char *uri) __attribute__((warn_unused_result));

struct chat_xccos_sib {
	const char *server_time;     /* ISO 8601 UTC */
	int64_t search_limit, message_size_limit, story_size_limit;
	const char *root_uri;        /* ma-cat://<domain>/<guid> */
};
/* <sib serverTime searchLimit messageSizeLimit storySizeLimit rootUri/> */
int chat_xccos_put_sib(struct cv_buf *b, const struct chat_xccos_sib *s)
	__attribute__((warn_unused_result));

struct chat_xccos_room {
	const char *uri, *name, *description, *topic;   /* NULL: attribute omitted */
	int64_t ucnt;                /* members; < 0: no ucnt info */
	bool is_private;             /* <info id="…:visibilty">private</info> */
	bool logged;                 /* <prop id="urn:parlano:ma:prop:logged">true</prop> */
};
/* <chanib name description uri topic><info id="urn:parlano:ma:info:ucnt">N</info>…</chanib> */
int chat_xccos_put_chanib(struct cv_buf *b, const struct chat_xccos_room *r)
	__attribute__((warn_unused_result));

/* The same, left open for children (aib participants, msg history):
 * chat_xccos_chanib_end() closes it.  _begin_uri: <chanib uri="U"> only. */
int chat_xccos_chanib_begin(struct cv_buf *b, const struct chat_xccos_room *r)
	__attribute__((warn_unused_result));
int chat_xccos_chanib_begin_uri(struct cv_buf *b, const char *uri)
	__attribute__((warn_unused_result));
int chat_xccos_chanib_end(struct cv_buf *b) __attribute__((warn_unused_result));

/* Participants as clients read them (rpl:join/bjoin): <uib id="N" uri="U"/>
 * per user, then in the chanib <aib key="3984" value="N,M"/> (members;
 * key "12276": managers).  ntc:join: <uib uri="U"><aib key domain value/></uib>. */
int chat_xccos_put_uib_id(struct cv_buf *b, int64_t id, const char *uri)
	__attribute__((warn_unused_result));
int chat_xccos_uib_begin(struct cv_buf *b, const char *uri) __attribute__((warn_unused_result));
int chat_xccos_uib_end(struct cv_buf *b) __attribute__((warn_unused_result));
/* <aib key="K" domain="D" value="V"/> (domain omitted when NULL) */
int chat_xccos_put_aib(struct cv_buf *b, const char *key, const char *domain, const char *value)
	__attribute__((warn_unused_result));
#define CHAT_XCCOS_AIB_USER "3984"
#define CHAT_XCCOS_AIB_CHANOP "12276"

/* <pref label="L" seqid="S" content="BASE64"/> (content omitted when NULL) */
int chat_xccos_put_pref(struct cv_buf *b, const char *label, int64_t seqid, const char *content)
	__attribute__((warn_unused_result));
/* <inv chanUri="R" author="U" ts="T"/>: an open invitation */
int chat_xccos_put_inv(struct cv_buf *b, const char *chan_uri, const char *author, const char *ts)
	__attribute__((warn_unused_result));
/* <token token="HEX" serveruri="URL"/> */
int chat_xccos_put_token(struct cv_buf *b, const char *token, const char *serveruri)
	__attribute__((warn_unused_result));

/* Escape s (text: & < > and CR; attr: also " ' TAB LF) into b; -EINVAL when s is
 * not valid UTF-8 or holds a character XML 1.0 forbids. */
int chat_xccos_escape(struct cv_buf *b, const char *s, bool attr) __attribute__((warn_unused_result));

#endif
