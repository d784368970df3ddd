/*
 * fuzz_sip — the path untrusted SIP bytes take through chatd before a reply
 * is chosen: libre's sip_msg_decode() on an mbuf (what its UDP and TCP
 * transports call), chat_msg_check() (size, header count, mandatory
 * headers, CSeq, Max-Forwards, Content-Length), then what the handlers parse
 * out of a request: the From/To/Request-URI addresses of record
 * (chat_aor_of), every Contact value (sip_addr_decode, expires, the mobile
 * parameter), the Authorization header (httpauth_digest_response_decode,
 * chat_nonce_check, chat_digest_ok, chat_nc_accept), the Event header, and
 * chat_count_headers() on the raw bytes.
 *
 * Input: one SIP message as it would arrive in a datagram (not
 * NUL-terminated).  The first byte picks the transport the message is taken
 * to have come over (even: UDP, odd: TCP) and is not part of the message.
 *
 * Contracts checked (abort() on a breach):
 *   - a refusal has a 4xx/5xx code from the documented set, a non-empty
 *     reason phrase without CR/LF, and a non-empty explanation;
 *   - an accepted request's Content-Length agrees with its body, and it is
 *     within the size and header limits;
 *   - chat_aor_of() output, when 0, is a NUL-terminated "sip:" URI within
 *     its buffer;
 *   - chat_count_headers() never counts beyond max + 1;
 *   - a digest is never accepted for a nonce that is not ours.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <re.h>

#include "cfg_chat.h"
#include "chat_msg.h"
#include "chat_store.h"
#include "chat_sip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_NAME "fuzz_sip"
#include "fuzz_check.h"

static const uint8_t secret[CHAT_SECRET_LEN] = { 42 };
static struct chat_nc_table nc_table;   /* persists across inputs, like the server's */

static bool contact_h(const struct sip_hdr *hdr, const struct sip_msg *msg, void *arg)
{
	struct sip_addr addr;
	struct pl ex;
	size_t *n = arg;

	(void)msg;
	if (++*n > 16)
		return true;
	if (pl_strcmp(&hdr->val, "*") == 0 || sip_addr_decode(&addr, &hdr->val) != 0)
		return false;
	if (msg_param_decode(&addr.params, "expires", &ex) == 0)
		(void)pl_u32(&ex);
	(void)chat_contact_is_mobile(addr.params.p, addr.params.l);
	return false;
}

static void check_aor(const struct uri *u)
{
	char out[CHAT_URI_MAX];

	memset(out, 'x', sizeof(out));
	if (chat_aor_of(u, out, sizeof(out)) == 0) {
		CHECK(memchr(out, '\0', sizeof(out)) != NULL);
		CHECK(strncmp(out, "sip:", 4) == 0);
	}
}

static void check_auth(const struct sip_msg *msg)
{
	const struct sip_hdr *h = sip_msg_hdr(msg, SIP_HDR_AUTHORIZATION);
	struct httpauth_digest_resp r;
	enum chat_nonce_check nc;
	bool ok;

	if (!h || httpauth_digest_response_decode(&r, &h->val) != 0)
		return;
	nc = chat_nonce_check(secret, "example.test", r.nonce.p, r.nonce.l, 1800000000);
	{
		struct chat_str m = { msg->met.p, msg->met.l }, uri = { r.uri.p, r.uri.l },
				n = { r.nonce.p, r.nonce.l }, ncnt = { r.nc.p, r.nc.l },
				cn = { r.cnonce.p, r.cnonce.l }, q = { r.qop.p, r.qop.l },
				resp = { r.response.p, r.response.l };

		ok = chat_digest_ok("939e7578ed9e3c518a452acee763bce9", m, uri, n, ncnt, cn, q, resp);
		/* the server asks chat_nc_accept only for a nonce of ours */
		if (nc == CHAT_NONCE_OK)
			(void)chat_nc_accept(&nc_table, r.nonce.p, r.nonce.l, ncnt, 1800000000);
	}
	/* a nonce not made with our secret is never OK (2^-128 aside) */
	CHECK(nc != CHAT_NONCE_OK);
	(void)ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cfg_chat cc;
	struct cfg_im im;
	struct sip_msg *msg = NULL;
	struct chat_refusal ref;
	struct mbuf *mb;
	size_t ncontacts = 0, nh;
	bool tcp;

	if (size < 1)
		return 0;
	tcp = data[0] & 1;
	data++;
	size--;
	cfg_chat_defaults(&cc, &im);
	cc.max_message_size = 4096;
	cc.max_headers = 20;

	nh = chat_count_headers((const char *)data, size, 20);
	CHECK(nh <= 21);

	mb = mbuf_alloc(size ? size : 1);
	if (!mb)
		return 0;
	if (mbuf_write_mem(mb, data, size) != 0)
		goto out;
	mb->pos = 0;
	if (sip_msg_decode(&msg, mb) != 0)
		goto out;
	msg->tp = tcp ? SIP_TRANSP_TCP : SIP_TRANSP_UDP;
	if (!msg->req)
		goto out;             /* responses: libre's client transactions, not ours */
	memset(&ref, 0, sizeof(ref));
	if (chat_msg_check(msg, &cc, &ref) != 0) {
		CHECK(ref.code == 400 || ref.code == 483 || ref.code == 513);
		CHECK(ref.reason && ref.reason[0] && !strpbrk(ref.reason, "\r\n"));
		CHECK(ref.why && ref.why[0]);
		goto out;
	}
	CHECK(msg->mb->end <= (size_t)cc.max_message_size);
	CHECK(list_count(&msg->hdrl) <= (uint32_t)cc.max_headers);
	CHECK(!pl_isset(&msg->clen) || pl_u32(&msg->clen) == mbuf_get_left(msg->mb));
	check_aor(&msg->uri);
	check_aor(&msg->to.uri);
	check_aor(&msg->from.uri);
	(void)sip_msg_hdr_apply(msg, true, SIP_HDR_CONTACT, contact_h, &ncontacts);
	check_auth(msg);
	{
		const struct sip_hdr *eh = sip_msg_hdr(msg, SIP_HDR_EVENT);
		struct sipevent_event se;

		if (eh)
			(void)sipevent_event_decode(&se, &eh->val);
	}
out:
	mem_deref(msg);
	mem_deref(mb);
	return 0;
}
