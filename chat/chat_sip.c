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

static void nonce_mac(const uint8_t secret[CHAT_SECRET_LEN], const char *realm, const char *t16,
		      char out[32])
{
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char msg[16 + 1 + 256];
	size_t rl = strlen(realm);
	int n;

	if (rl > 255)
		rl = 255;
	n = snprintf(msg, sizeof(msg), "%.16s:%.*s", t16, (int)rl, realm);
	if (!HMAC(EVP_sha256(), secret, CHAT_SECRET_LEN, (const unsigned char *)msg, (size_t)n, md,
		  &mdlen) || mdlen < 16)
		memset(md, 0, sizeof(md));   /* never matches a real MAC in practice */
	hex(md, 16, out);
}

void chat_nonce_make(const uint8_t secret[CHAT_SECRET_LEN], const char *realm, uint64_t now_s,
		     char out[CHAT_NONCE_LEN + 1])
{
	snprintf(out, 17, "%016llx", (unsigned long long)now_s);
	nonce_mac(secret, realm, out, out + 16);
	out[CHAT_NONCE_LEN] = '\0';
}

enum chat_nonce_check chat_nonce_check(const uint8_t secret[CHAT_SECRET_LEN], const char *realm,
				       const char *nonce, size_t len, uint64_t now_s)
{
	char t16[17], mac[32];
	unsigned long long t = 0;
	unsigned char diff = 0;

	if (!nonce || len != CHAT_NONCE_LEN)
		return CHAT_NONCE_BAD;
	for (size_t i = 0; i < 16; i++) {
		char c = nonce[i];

		if (!isxdigit((unsigned char)c))
			return CHAT_NONCE_BAD;
		t = t * 16 + (unsigned long long)(isdigit((unsigned char)c)
							  ? c - '0' : (tolower((unsigned char)c) - 'a' + 10));
	}
	memcpy(t16, nonce, 16);
	t16[16] = '\0';
	nonce_mac(secret, realm, t16, mac);
	for (size_t i = 0; i < 32; i++)
		diff |= (unsigned char)(mac[i] ^ nonce[16 + i]);
	if (diff)
		return CHAT_NONCE_BAD;
	if (t > now_s + 5)
		return CHAT_NONCE_BAD;
	if (now_s - t > CHAT_NONCE_TTL_S)
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

bool chat_json_escape(const char *src, size_t len, char *dst, size_t dstlen)
{
	size_t o = 0;

	if (!dstlen)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)src[i];
		char tmp[8];
		const char *rep = NULL;
		size_t rl;

		if (c == '"')
			rep = "\\\"";
		else if (c == '\\')
			rep = "\\\\";
		else if (c == '\n')
			rep = "\\n";
		else if (c == '\r')
			rep = "\\r";
		else if (c == '\t')
			rep = "\\t";
		else if (c < 0x20) {
			snprintf(tmp, sizeof(tmp), "\\u%04x", c);
			rep = tmp;
		}
		rl = rep ? strlen(rep) : 1;
		if (o + rl >= dstlen) {
			dst[o] = '\0';
			return false;
		}
		if (rep)
			memcpy(dst + o, rep, rl);
		else
			dst[o] = (char)c;
		o += rl;
	}
	dst[o] = '\0';
	return true;
}

bool chat_xml_escape(const char *src, size_t len, char *dst, size_t dstlen)
{
	size_t o = 0;

	if (!dstlen)
		return false;
	for (size_t i = 0; i < len; i++) {
		const char *rep = NULL;
		size_t rl;

		switch (src[i]) {
		case '&': rep = "&amp;"; break;
		case '<': rep = "&lt;"; break;
		case '>': rep = "&gt;"; break;
		case '"': rep = "&quot;"; break;
		case '\'': rep = "&apos;"; break;
		default: break;
		}
		rl = rep ? strlen(rep) : 1;
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
