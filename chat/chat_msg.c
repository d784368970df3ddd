/*
 * chat_msg — request checks and AOR canonicalisation (contract in
 * chat_msg.h).
 */
#include "chat_msg.h"

#include <errno.h>

#include "chat_store.h"

static int refuse(struct chat_refusal *r, uint16_t code, const char *reason, const char *why)
{
	r->code = code;
	r->reason = reason;
	r->why = why;
	return -1;
}

int chat_msg_check(const struct sip_msg *msg, const struct cfg_chat *cc, struct chat_refusal *r)
{
	size_t body = mbuf_get_left(msg->mb);

	if (msg->mb->end > (size_t)cc->max_message_size)
		return refuse(r, 513, "Message Too Large", "larger than chat.max_message_size");
	if (list_count(&msg->hdrl) > (uint32_t)cc->max_headers)
		return refuse(r, 400, "Too Many Headers", "more header fields than chat.max_headers");
	if (!pl_isset(&msg->callid) || !pl_isset(&msg->cseq.met) || !msg->from.auri.l ||
	    !msg->to.auri.l)
		return refuse(r, 400, "Missing Mandatory Header", "From, To, Call-ID or CSeq missing");
	if (pl_cmp(&msg->cseq.met, &msg->met) != 0)
		return refuse(r, 400, "CSeq Method Mismatch", "CSeq method differs from the request's");
	if (pl_isset(&msg->maxfwd) && pl_u32(&msg->maxfwd) == 0)
		return refuse(r, 483, "Too Many Hops", "Max-Forwards is 0");
	/* a UDP datagram cut at libre's 8 KiB receive size lands here too */
	if (pl_isset(&msg->clen) ? pl_u32(&msg->clen) != body : (msg->tp != SIP_TRANSP_UDP || body))
		return refuse(r, 400, "Bad Content-Length", "Content-Length disagrees with the body");
	return 0;
}

int chat_aor_of(const struct uri *u, char *out, size_t outlen)
{
	char raw[CHAT_URI_MAX + 8], why[128];

	if (!u || pl_strcasecmp(&u->scheme, "sip") != 0 || !u->user.l || !u->host.l ||
	    u->user.l + u->host.l + 6 > sizeof(raw))
		return -EINVAL;
	if (re_snprintf(raw, sizeof(raw), "sip:%r@%r", &u->user, &u->host) < 0)
		return -EINVAL;
	return chat_uri_normalize(raw, out, outlen, why, sizeof(why)) == 0 ? 0 : -EINVAL;
}
