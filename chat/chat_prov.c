/*
 * chat_prov — provisioning SUBSCRIBE/NOTIFY (contract in chat_prov.h).
 */
#include "chat_prov.h"

#include <string.h>

#include "chat_reg.h"
#include "chat_users.h"
#include "cv_log.h"

#define COMP "chatd"

struct prov {
	struct le le;             /* in s->provs */
	struct sipnot *not;
	char uri[CHAT_URI_MAX];
};

static void prov_destructor(void *arg)
{
	struct prov *p = arg;

	list_unlink(&p->le);
	mem_deref(p->not);
}

static void prov_close(int err, const struct sip_msg *msg, void *arg)
{
	struct prov *p = arg;

	(void)msg;
	cv_debug(COMP, "provisioning subscription of %s ended%s%s", p->uri, err ? ": " : "",
		 err ? strerror(err) : "");
	mem_deref(p);
}

/*
 * The subscription's dialog, routed over the flow the SUBSCRIBE came in on.
 * libre 1.1.0 builds a dialog's next hop from Record-Route, else from the
 * Contact with the default transport (UDP): a TCP client whose Contact lacks
 * ;transport=tcp would never get its NOTIFY.  So, when the request carries
 * no Record-Route of its own (it came straight from the client), the dialog
 * is built from a copy of the request with one loose Record-Route naming the
 * flow (source address, transport): libre then sends every NOTIFY there,
 * over the open TCP connection, with that Route header, which the client's
 * own URI in it makes harmless.  0 and *dlgp, or an errno.
 */
static int flow_dialog(const struct sip_msg *msg, struct sip_dialog **dlgp)
{
	struct mbuf *mb = mbuf_alloc(1024);
	struct sip_msg *copy = NULL;
	int err;

	*dlgp = NULL;
	if (!mb)
		return ENOMEM;
	err = mbuf_printf(mb, "%r %r SIP/2.0\r\n", &msg->met, &msg->ruri);
	for (struct le *le = msg->hdrl.head; le && !err; le = le->next) {
		const struct sip_hdr *h = le->data;

		if (h->id != SIP_HDR_CONTENT_LENGTH)
			err = mbuf_printf(mb, "%r: %r\r\n", &h->name, &h->val);
	}
	err = err ? err : mbuf_printf(mb, "Record-Route: <sip:%J;transport=%s;lr>\r\n"
				       "Content-Length: 0\r\n\r\n", &msg->src,
				       sip_transp_name(msg->tp));
	if (!err) {
		mb->pos = 0;
		err = sip_msg_decode(&copy, mb);
	}
	if (!err)
		err = sip_dialog_accept(dlgp, copy);
	mem_deref(copy);
	mem_deref(mb);
	return err;
}

char *chat_prov_document(const struct cfg_chat *cc, const char *uri, bool chat_enabled)
{
	struct mbuf *mb = mbuf_alloc(1024);
	char esc[CHAT_URI_MAX * 6 + 1];
	char *out = NULL;
	int err;

	if (!mb)
		return NULL;
	if (!chat_xml_escape(uri, strlen(uri), esc, sizeof(esc)))
		goto out;
	err = mbuf_printf(mb,
			  "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n"
			  "<provisionGroupList xmlns=\"http://schemas.microsoft.com/2006/09/sip/"
			  "provisiongrouplist-notification\">\r\n"
			  "<provisionGroup name=\"persistentChatConfiguration\">\r\n"
			  "<persistentChatConfiguration>\r\n"
			  "<user>%s</user>\r\n"
			  "<persistentChatEnabled>%s</persistentChatEnabled>\r\n"
			  "<persistentChatPools>\r\n",
			  esc, chat_enabled ? "true" : "false");
	for (size_t i = 0; !err && chat_enabled && i < cc->npool_uris; i++) {
		if (!chat_xml_escape(cc->pool_uris[i], strlen(cc->pool_uris[i]), esc, sizeof(esc)))
			goto out;
		err = mbuf_printf(mb, "<pool uri=\"%s\"/>\r\n", esc);
	}
	err = err ? err : mbuf_printf(mb, "</persistentChatPools>\r\n"
					  "</persistentChatConfiguration>\r\n"
					  "</provisionGroup>\r\n</provisionGroupList>\r\n");
	if (err)
		goto out;
	mb->pos = 0;
	(void)mbuf_strdup(mb, &out, mb->end);
out:
	mem_deref(mb);
	return out;
}

bool chat_prov_subscribe(const struct sip_msg *msg, void *arg)
{
	struct chat_srv *s = arg;
	const struct sip_hdr *eh = sip_msg_hdr(msg, SIP_HDR_EVENT);
	const struct chat_user_rec *u;
	struct sipevent_event se;
	char uri[CHAT_URI_MAX];
	struct sip_dialog *dlg = NULL;
	struct prov *p = NULL;
	char *doc = NULL;
	int err;

	if (s->stopping) {
		chat_reply(s, NULL, msg, 503, "Service Unavailable", "shutting down");
		return true;
	}
	if (!eh || sipevent_event_decode(&se, &eh->val) != 0) {
		chat_reply(s, NULL, msg, 400, "Missing Event", "SUBSCRIBE without a valid Event header");
		return true;
	}
	if (pl_strcasecmp(&se.event, CHAT_PROV_EVENT) != 0) {
		chat_log_refusal(s, msg, 489, "event package not supported");
		(void)sip_treplyf(NULL, NULL, s->sip, msg, false, 489, "Bad Event",
				  "Allow-Events: " CHAT_PROV_EVENT "\r\nContent-Length: 0\r\n\r\n");
		return true;
	}
	if (chat_aor_of(&msg->from.uri, uri, sizeof(uri)) != 0) {
		chat_reply(s, NULL, msg, 403, "Not Registered", "From is not a SIP user");
		return true;
	}
	if (chat_reg_authorize(s, msg, uri, false) != 0)
		return true;      /* answered: 401 challenge, 403 */
	u = chat_users_find(s->users, uri);
	if (!u || u->disabled) {
		chat_reply(s, NULL, msg, 403, "User Disabled", "subscriber disabled or removed");
		return true;
	}
	doc = chat_prov_document(&s->cfg->chat, uri, u->chat_enabled);
	p = mem_zalloc(sizeof(*p), prov_destructor);
	if (!doc || !p) {
		chat_reply(s, NULL, msg, 500, "Server Internal Error", "out of memory");
		goto out;
	}
	snprintf(p->uri, sizeof(p->uri), "%s", uri);
	if (!sip_msg_hdr(msg, SIP_HDR_RECORD_ROUTE) && flow_dialog(msg, &dlg) != 0) {
		chat_reply(s, NULL, msg, 500, "Server Internal Error", "no dialog for the subscription");
		goto out;
	}
	err = sipevent_accept(&p->not, s->evsock, msg, dlg, &se, 200, "OK", 60, 3600, 3600,
			      "chatd", CHAT_PROV_CTYPE, NULL, NULL, false, prov_close, p, NULL);
	if (err) {
		chat_reply(s, NULL, msg, 500, "Server Internal Error", "subscription not accepted");
		goto out;
	}
	list_append(&s->provs, &p->le, p);
	err = sipevent_notifyf(p->not, NULL, SIPEVENT_ACTIVE, SIPEVENT_DEACTIVATED, 0, "%s", doc);
	if (err)
		cv_warn(COMP, "provisioning NOTIFY to %s not sent: %s", uri, strerror(err));
	else
		cv_info(COMP, "provisioning sent to %s (persistent chat %s)", uri,
			u->chat_enabled ? "enabled" : "disabled");
	p = NULL;        /* owned by s->provs until prov_close */
out:
	mem_deref(dlg);    /* the notifier holds its own reference */
	mem_deref(p);
	mem_deref(doc);
	return true;
}

void chat_prov_close_all(struct chat_srv *s)
{
	while (s->provs.head)
		mem_deref(s->provs.head->data);
}
