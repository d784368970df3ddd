/*
 * chat_sip — pure helpers of chatd (contract in chat_sip.h).
 */
#include "chat_sip.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

static const char hexd[] = "0123456789abcdef";

static void hex(const uint8_t *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hexd[in[i] >> 4];
		out[2 * i + 1] = hexd[in[i] & 15];
	}
}

/* MAC over the nonce's first 32 characters (time and salt) and the realm */
static void nonce_mac(const uint8_t secret[CHAT_SECRET_LEN], const char *realm, const char *ts32,
		      char out[32])
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char msg[32 + 1 + 256];
	size_t rl = strlen(realm);
	int n;

	if (rl > 255)
		rl = 255;
	n = snprintf(msg, sizeof(msg), "%.32s:%.*s", ts32, (int)rl, realm);
	if (!HMAC(EVP_sha256(), secret, CHAT_SECRET_LEN, (const unsigned char *)msg, (size_t)n, md,
		  &mdlen) || mdlen < 16)
		memset(md, 0, sizeof(md));   /* never matches a real MAC in practice */
	hex(md, 16, out);
}

void chat_nonce_make(const uint8_t secret[CHAT_SECRET_LEN], const char *realm, uint64_t now_ms,
		     uint64_t salt, char out[CHAT_NONCE_LEN + 1])
{
	snprintf(out, 33, "%016llx%016llx", (unsigned long long)now_ms, (unsigned long long)salt);
	nonce_mac(secret, realm, out, out + 32);
	out[CHAT_NONCE_LEN] = '\0';
}

enum chat_nonce_check chat_nonce_check(const uint8_t secret[CHAT_SECRET_LEN], const char *realm,
				       const char *nonce, size_t len, uint64_t now_ms)
{
	char ts32[33], mac[32];
	unsigned long long t = 0;
	unsigned char diff = 0;

	if (!nonce || len != CHAT_NONCE_LEN)
		return CHAT_NONCE_BAD;
	for (size_t i = 0; i < 32; i++) {
		char c = nonce[i];

		if (!isxdigit((unsigned char)c))
			return CHAT_NONCE_BAD;
		if (i < 16)
			t = t * 16 + (unsigned long long)(isdigit((unsigned char)c)
								  ? c - '0' : (tolower((unsigned char)c) - 'a' + 10));
	}
	memcpy(ts32, nonce, 32);
	ts32[32] = '\0';
	nonce_mac(secret, realm, ts32, mac);
	for (size_t i = 0; i < 32; i++)
		diff |= (unsigned char)(mac[i] ^ nonce[32 + i]);
	if (diff)
		return CHAT_NONCE_BAD;
	if (t > now_ms + CHAT_NONCE_SKEW_MS)
		return CHAT_NONCE_BAD;
	if (now_ms > t && now_ms - t > CHAT_NONCE_TTL_MS)   /* t may be a little ahead: no wrap */
		return CHAT_NONCE_STALE;
	return CHAT_NONCE_OK;
}

/* hex MD5 of the parts joined by ':' */
static bool md5_join(char out[33], const struct chat_str *parts, size_t n)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	bool ok;

	if (!c)
		return false;
	ok = EVP_DigestInit_ex(c, EVP_md5(), NULL) == 1;
	for (size_t i = 0; ok && i < n; i++) {
		if (i)
			ok = EVP_DigestUpdate(c, ":", 1) == 1;
		if (ok && parts[i].l)
			ok = EVP_DigestUpdate(c, parts[i].p, parts[i].l) == 1;
	}
	ok = ok && EVP_DigestFinal_ex(c, md, &mdlen) == 1 && mdlen == 16;
	EVP_MD_CTX_free(c);
	if (ok) {
		hex(md, 16, out);
		out[32] = '\0';
	}
	return ok;
}

bool chat_digest_ok(const char *ha1_hex, struct chat_str method, struct chat_str uri,
		    struct chat_str nonce, struct chat_str nc, struct chat_str cnonce,
		    struct chat_str qop, struct chat_str resp)
{
	char ha2[33], want[33];
	unsigned char diff = 0;

	if (!ha1_hex || strlen(ha1_hex) != 32 || resp.l != 32 || !method.l || !nonce.l)
		return false;
	{
		struct chat_str p2[2] = { method, uri };

		if (!md5_join(ha2, p2, 2))
			return false;
	}
	if (qop.l == 0) {
		struct chat_str p[3] = { { ha1_hex, 32 }, nonce, { ha2, 32 } };

		if (!md5_join(want, p, 3))
			return false;
	} else if (qop.l == 4 && strncasecmp(qop.p, "auth", 4) == 0) {
		struct chat_str p[6] = { { ha1_hex, 32 }, nonce, nc, cnonce, qop, { ha2, 32 } };

		if (!nc.l || !cnonce.l || !md5_join(want, p, 6))
			return false;
	} else {
		return false;
	}
	for (size_t i = 0; i < 32; i++)
		diff |= (unsigned char)(want[i] ^ tolower((unsigned char)resp.p[i]));
	return diff == 0;
}

static uint64_t hex_u64(const char *p, size_t n, bool *ok)
{
	uint64_t v = 0;

	*ok = n > 0 && n <= 16;
	for (size_t i = 0; *ok && i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (!isxdigit(c))
			*ok = false;
		else
			v = v * 16 + (uint64_t)(isdigit(c) ? c - '0' : tolower(c) - 'a' + 10);
	}
	return v;
}

enum chat_nc_check chat_nc_accept(struct chat_nc_table *t, const char *nonce, size_t len,
				  struct chat_str nc, uint64_t now_ms)
{
	uint32_t h = 2166136261u, ncv = 1;     /* no qop: the nonce's one use */
	uint64_t nt;
	size_t set, victim = 0;
	bool ok;

	if (!t || !nonce || len != CHAT_NONCE_LEN)
		return CHAT_NC_BAD;
	if (nc.l) {
		uint64_t v = hex_u64(nc.p, nc.l, &ok);

		if (!ok || nc.l != 8 || v == 0)
			return CHAT_NC_BAD;
		ncv = (uint32_t)v;
	}
	nt = hex_u64(nonce, 16, &ok);
	if (!ok || nt == 0)
		return CHAT_NC_BAD;
	for (size_t i = 0; i < len; i++)          /* FNV-1a */
		h = (h ^ (unsigned char)nonce[i]) * 16777619u;
	set = h % CHAT_NC_SETS;
	for (size_t w = 0; w < CHAT_NC_WAYS; w++) {
		if (t->e[set][w].t && memcmp(t->e[set][w].nonce, nonce, len) == 0) {
			if (ncv <= t->e[set][w].nc)
				return CHAT_NC_REPLAY;
			t->e[set][w].nc = ncv;
			return CHAT_NC_OK;
		}
	}
	if (nt <= t->evicted_t)
		return CHAT_NC_REPLAY;           /* may have been dropped: re-challenge */
	for (size_t w = 0; w < CHAT_NC_WAYS; w++) {
		uint64_t wt = t->e[set][w].t;

		if (wt == 0 || wt + CHAT_NONCE_TTL_MS < now_ms) {   /* free or stale */
			victim = w;
			goto take;
		}
		if (wt < t->e[set][victim].t)
			victim = w;
	}
	if (t->e[set][victim].t > t->evicted_t)
		t->evicted_t = t->e[set][victim].t;
take:
	memcpy(t->e[set][victim].nonce, nonce, len);
	t->e[set][victim].t = nt;
	t->e[set][victim].nc = ncv;
	return CHAT_NC_OK;
}

enum chat_admit chat_admit_decide(size_t active, size_t max, size_t capacity, size_t idle,
				  size_t *evict)
{
	size_t bound = max && max < capacity ? max : capacity;
	size_t need;

	*evict = 0;
	if (active < bound)
		return CHAT_ADMIT;
	if (max == 0)
		return CHAT_FAILED;     /* no maximum: the server's own capacity is the limit */
	/* at the maximum: free enough idle sessions that active - evict < bound */
	need = active - bound + 1;
	if (idle < need)
		return CHAT_BUSY;
	*evict = need;
	return CHAT_ADMIT_EVICT;
}

bool chat_contact_is_mobile(const char *params, size_t len)
{
	size_t i = 0;

	while (i < len) {
		size_t s, e, ns, ne, vs, ve;

		while (i < len && params[i] != ';')
			i++;
		if (i >= len)
			break;
		s = ++i;
		while (i < len && params[i] != ';')
			i++;
		e = i;
		ns = s;
		while (ns < e && params[ns] == ' ')
			ns++;
		ne = ns;
		while (ne < e && params[ne] != '=' && params[ne] != ' ')
			ne++;
		if (ne - ns != 8 || strncasecmp(params + ns, "mobility", 8) != 0)
			continue;
		vs = ne;
		while (vs < e && (params[vs] == ' ' || params[vs] == '='))
			vs++;
		ve = e;
		while (ve > vs && params[ve - 1] == ' ')
			ve--;
		if (ve - vs >= 2 && params[vs] == '"' && params[ve - 1] == '"') {
			vs++;
			ve--;
		}
		if (ve - vs == 6 && strncasecmp(params + vs, "mobile", 6) == 0)
			return true;
	}
	return false;
}

size_t chat_count_headers(const char *buf, size_t len, size_t max)
{
	size_t n = 0, i = 0;
	bool first = true;

	while (i < len) {
		size_t s = i;

		while (i < len && buf[i] != '\n')
			i++;
		if (i >= len)
			break;           /* no line end: not a complete line */
		i++;
		/* line is buf[s, i); blank ("\r\n" or "\n") ends the headers */
		if (i - s <= 2 && (buf[s] == '\r' || buf[s] == '\n'))
			break;
		if (first) {
			first = false;   /* the start line */
			continue;
		}
		if (buf[s] == ' ' || buf[s] == '\t')
			continue;        /* folded continuation */
		if (++n > max)
			break;
	}
	return n;
}

/* The replacement of c (NULL: c itself); tmp holds a computed one. */
typedef const char *(escape_rep_h)(unsigned char c, char tmp[8]);

static bool escape(const char *src, size_t len, char *dst, size_t dstlen, escape_rep_h *rep_of)
{
	size_t o = 0;

	if (!dstlen)
		return false;
	for (size_t i = 0; i < len; i++) {
		char tmp[8];
		const char *rep = rep_of((unsigned char)src[i], tmp);
		size_t rl = rep ? strlen(rep) : 1;

		if (o + rl >= dstlen) {
			dst[o] = '\0';
			return false;
		}
		if (rep)
			memcpy(dst + o, rep, rl);
		else
			dst[o] = src[i];
		o += rl;
	}
	dst[o] = '\0';
	return true;
}

static const char *json_rep(unsigned char c, char tmp[8])
{
	switch (c) {
	case '"': return "\\\"";
	case '\\': return "\\\\";
	case '\n': return "\\n";
	case '\r': return "\\r";
	case '\t': return "\\t";
	default: break;
	}
	if (c < 0x20) {
		snprintf(tmp, 8, "\\u%04x", c);
		return tmp;
	}
	return NULL;
}

static const char *xml_rep(unsigned char c, char tmp[8])
{
	(void)tmp;
	switch (c) {
	case '&': return "&amp;";
	case '<': return "&lt;";
	case '>': return "&gt;";
	case '"': return "&quot;";
	case '\'': return "&apos;";
	default: return NULL;
	}
}

bool chat_json_escape(const char *src, size_t len, char *dst, size_t dstlen)
{
	return escape(src, len, dst, dstlen, json_rep);
}

bool chat_xml_escape(const char *src, size_t len, char *dst, size_t dstlen)
{
	return escape(src, len, dst, dstlen, xml_rep);
}
