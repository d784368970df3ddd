/*
 * ret_vseq — interval sets, the event-id set and a string map for verify;
 * see ret_vseq.h.
 */
#include "ret_vseq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* --- interval set ------------------------------------------------------------ */

/* Can an interval ending at b absorb one starting at a (overlap or touch)? */
static bool reaches(int64_t b, int64_t a)
{
	return a == INT64_MIN || b >= a - 1;
}

/* First index whose interval ends at or after x - 1 (so it may touch x). */
static size_t first_touching(const struct ret_vseq *s, int64_t x)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (reaches(s->iv[mid].b, x))
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* First index whose interval ends at or after x. */
static size_t first_ending_from(const struct ret_vseq *s, int64_t x)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->iv[mid].b >= x)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

static int reserve_one(struct ret_vseq *s)
{
	struct ret_vseq_iv *iv;
	size_t cap;

	if (s->n < s->cap)
		return 0;
	if (s->cap > SIZE_MAX / 2 / sizeof(*iv))
		return -ENOMEM;
	cap = s->cap ? s->cap * 2 : 8;
	iv = realloc(s->iv, cap * sizeof(*iv));
	if (!iv)
		return -ENOMEM;
	s->iv = iv;
	s->cap = cap;
	return 0;
}

int ret_vseq_add(struct ret_vseq *s, int64_t a, int64_t b)
{
	size_t i, j;
	int over = 0;

	if (a > b)
		return -EINVAL;
	/* Fast path: at or past the top. */
	if (s->n && a > s->iv[s->n - 1].b) {
		if (reaches(s->iv[s->n - 1].b, a)) {
			s->iv[s->n - 1].b = b;
			return 0;
		}
		if (reserve_one(s))
			return -ENOMEM;
		s->iv[s->n++] = (struct ret_vseq_iv){ a, b };
		return 0;
	}
	i = first_touching(s, a);
	/* j: one past the last interval that starts at or before b + 1. */
	for (j = i; j < s->n && reaches(b, s->iv[j].a); j++)
		if (s->iv[j].a <= b && s->iv[j].b >= a)
			over = 1;
	if (i == j) {
		if (reserve_one(s))
			return -ENOMEM;
		memmove(&s->iv[i + 1], &s->iv[i], (s->n - i) * sizeof(*s->iv));
		s->iv[i] = (struct ret_vseq_iv){ a, b };
		s->n++;
		return 0;
	}
	if (s->iv[i].a < a)
		a = s->iv[i].a;
	if (s->iv[j - 1].b > b)
		b = s->iv[j - 1].b;
	s->iv[i] = (struct ret_vseq_iv){ a, b };
	memmove(&s->iv[i + 1], &s->iv[j], (s->n - j) * sizeof(*s->iv));
	s->n -= j - i - 1;
	return over;
}

bool ret_vseq_contains(const struct ret_vseq *s, int64_t x)
{
	size_t i = first_ending_from(s, x);

	return i < s->n && s->iv[i].a <= x;
}

bool ret_vseq_overlap(const struct ret_vseq *s, int64_t a, int64_t b, int64_t *oa,
		      int64_t *ob)
{
	size_t i;

	if (a > b)
		return false;
	i = first_ending_from(s, a);
	if (i >= s->n || s->iv[i].a > b)
		return false;
	*oa = s->iv[i].a > a ? s->iv[i].a : a;
	*ob = s->iv[i].b < b ? s->iv[i].b : b;
	return true;
}

bool ret_vseq_hole(const struct ret_vseq *s, int64_t a, int64_t b, int64_t *ha,
		   int64_t *hb)
{
	size_t i;

	if (a > b)
		return false;
	i = first_ending_from(s, a);
	if (i < s->n && s->iv[i].a <= a) {
		/* a is covered: the hole, if any, starts past this interval. */
		if (s->iv[i].b >= b)
			return false;
		a = s->iv[i].b + 1;
		i++;
	}
	*ha = a;
	*hb = (i < s->n && s->iv[i].a <= b) ? s->iv[i].a - 1 : b;
	return true;
}

int64_t ret_vseq_count(const struct ret_vseq *s)
{
	int64_t total = 0;

	for (size_t i = 0; i < s->n; i++) {
		uint64_t w = (uint64_t)s->iv[i].b - (uint64_t)s->iv[i].a + 1;

		if (w == 0 || w > (uint64_t)(INT64_MAX - total))
			return INT64_MAX;
		total += (int64_t)w;
	}
	return total;
}

void ret_vseq_free(struct ret_vseq *s)
{
	if (!s)
		return;
	free(s->iv);
	s->iv = NULL;
	s->n = s->cap = 0;
}

/* --- event-id set ------------------------------------------------------------ */

/* splitmix64's finaliser: UUIDv7 starts with a timestamp, so the raw bytes
 * are far from uniform; mix all 16 of them. */
static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= UINT64_C(0xbf58476d1ce4e5b9);
	x ^= x >> 27;
	x *= UINT64_C(0x94d049bb133111eb);
	x ^= x >> 31;
	return x;
}

static uint64_t id_hash(const uint8_t id[RET_VIDS_LEN])
{
	uint64_t lo, hi;

	memcpy(&lo, id, 8);
	memcpy(&hi, id + 8, 8);
	return mix64(lo ^ mix64(hi));
}

static struct ret_vids_slot *ids_find(struct ret_vids_slot *slots, size_t cap,
				      const uint8_t id[RET_VIDS_LEN])
{
	size_t mask = cap - 1;

	for (size_t i = (size_t)id_hash(id) & mask;; i = (i + 1) & mask)
		if (!slots[i].owner || memcmp(slots[i].id, id, RET_VIDS_LEN) == 0)
			return &slots[i];
}

static int ids_grow(struct ret_vids *s)
{
	struct ret_vids_slot *slots;
	size_t cap = s->cap ? s->cap * 2 : 1024;

	if (s->cap > SIZE_MAX / 2 / sizeof(*slots))
		return -ENOMEM;
	slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	for (size_t i = 0; i < s->cap; i++)
		if (s->slots[i].owner)
			*ids_find(slots, cap, s->slots[i].id) = s->slots[i];
	free(s->slots);
	s->slots = slots;
	s->cap = cap;
	return 0;
}

int ret_vids_add(struct ret_vids *s, const uint8_t id[RET_VIDS_LEN], uint32_t owner,
		 uint32_t *holder)
{
	struct ret_vids_slot *sl;

	if (owner == 0)
		return -EINVAL;
	/* At most 3/4 full, so probes stay short and one slot stays free. */
	if (s->cap == 0 || s->n + 1 > s->cap / 4 * 3)
		if (ids_grow(s))
			return -ENOMEM;
	sl = ids_find(s->slots, s->cap, id);
	if (sl->owner) {
		if (holder)
			*holder = sl->owner;
		return 1;
	}
	memcpy(sl->id, id, RET_VIDS_LEN);
	sl->owner = owner;
	s->n++;
	return 0;
}

void ret_vids_free(struct ret_vids *s)
{
	if (!s)
		return;
	free(s->slots);
	s->slots = NULL;
	s->cap = s->n = 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int ret_vids_parse_uuid(const char *s, size_t len, uint8_t out[RET_VIDS_LEN])
{
	size_t k = 0;

	if (len != 36)
		return -EINVAL;
	for (size_t i = 0; i < 36;) {
		int hi, lo;

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return -EINVAL;
			i++;
			continue;
		}
		hi = hexval(s[i]);
		lo = hexval(s[i + 1]);
		if (hi < 0 || lo < 0 || k >= RET_VIDS_LEN)
			return -EINVAL;
		out[k++] = (uint8_t)(hi << 4 | lo);
		i += 2;
	}
	return k == RET_VIDS_LEN ? 0 : -EINVAL;
}

/* --- string map ---------------------------------------------------------------- */

static uint64_t str_hash(const char *s)
{
	uint64_t h = UINT64_C(14695981039346656037);  /* FNV-1a */

	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		h = (h ^ *p) * UINT64_C(1099511628211);
	return h;
}

static struct ret_vmap_ent *map_find(struct ret_vmap_ent *e, size_t cap, const char *key,
				     uint64_t h)
{
	size_t mask = cap - 1;

	for (size_t i = (size_t)h & mask;; i = (i + 1) & mask)
		if (!e[i].key || (e[i].hash == h && strcmp(e[i].key, key) == 0))
			return &e[i];
}

static int map_grow(struct ret_vmap *m)
{
	struct ret_vmap_ent *e;
	size_t cap = m->cap ? m->cap * 2 : 16;

	if (m->cap > SIZE_MAX / 2 / sizeof(*e))
		return -ENOMEM;
	e = calloc(cap, sizeof(*e));
	if (!e)
		return -ENOMEM;
	for (size_t i = 0; i < m->cap; i++)
		if (m->e[i].key)
			*map_find(e, cap, m->e[i].key, m->e[i].hash) = m->e[i];
	free(m->e);
	m->e = e;
	m->cap = cap;
	return 0;
}

void **ret_vmap_slot(struct ret_vmap *m, const char *key, bool create)
{
	uint64_t h = str_hash(key);
	struct ret_vmap_ent *e;

	if (m->cap) {
		e = map_find(m->e, m->cap, key, h);
		if (e->key)
			return &e->val;
	}
	if (!create)
		return NULL;
	if (m->cap == 0 || m->n + 1 > m->cap / 2)
		if (map_grow(m))
			return NULL;
	e = map_find(m->e, m->cap, key, h);
	e->key = strdup(key);
	if (!e->key)
		return NULL;
	e->hash = h;
	e->val = NULL;
	m->n++;
	return &e->val;
}

static int cmp_ent(const void *x, const void *y)
{
	const struct ret_vmap_ent *a = *(const struct ret_vmap_ent *const *)x;
	const struct ret_vmap_ent *b = *(const struct ret_vmap_ent *const *)y;

	return strcmp(a->key, b->key);
}

struct ret_vmap_ent **ret_vmap_sorted(const struct ret_vmap *m)
{
	struct ret_vmap_ent **v = malloc((m->n ? m->n : 1) * sizeof(*v));
	size_t k = 0;

	if (!v)
		return NULL;
	for (size_t i = 0; i < m->cap; i++)
		if (m->e[i].key)
			v[k++] = &m->e[i];
	qsort(v, k, sizeof(*v), cmp_ent);
	return v;
}

void ret_vmap_free(struct ret_vmap *m, void (*free_val)(void *))
{
	if (!m)
		return;
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->e[i].key)
			continue;
		if (free_val)
			free_val(m->e[i].val);
		free(m->e[i].key);
	}
	free(m->e);
	m->e = NULL;
	m->cap = m->n = 0;
}
