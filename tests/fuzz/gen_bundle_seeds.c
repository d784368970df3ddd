/*
 * gen_bundle_seeds — write the seed bundles of fuzz_bundle with the real
 * archive adapter (adapters/archive.c), so the seeds are byte for byte what
 * chatvault writes (docs/FORMATS.md §1).  Not part of any test; run by
 * `make fuzz-seeds` when the bundle format changes:
 *
 *     gen_bundle_seeds OUTDIR
 *
 * Three bundles of one hash chain, each a few hundred bytes:
 *   1. one chat.post;
 *   2. four events with a staging-id gap (two staging_ids ranges), an
 *      upload whose attachment is in the file store (a files/ member);
 *   3. a download whose attachment is not in the store (missing_files).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "builtin.h"
#include "cv_time.h"
#include "cv_util.h"
#include "event.h"

#define ID(n) "0192f0c4-6c1e-7d3a-9b1e-2f6a5c0d9e1" #n
#define ROOM "\"room\":\"ma-chan://contoso.com/5c1d\""
#define SRC(n) "\"source\":{\"server\":\"chat01\",\"seq\":" #n "}"

static const char attachment[] = "quarterly figures \xe2\x82\xac 1.2M\n";

static const char *const lines[] = {
	"{\"v\":1,\"id\":\"" ID(1) "\",\"type\":\"chat.post\",\"ts\":\"2026-11-21T10:00:00.123Z\","
	ROOM ",\"user\":\"sip:alice@contoso.com\",\"text\":\"h\xc3\xa9llo\"," SRC(1) "}",

	"{\"v\":1,\"id\":\"" ID(2) "\",\"type\":\"chat.join\",\"ts\":\"2026-11-21T10:00:01.000Z\","
	ROOM ",\"user\":\"sip:bob@contoso.com\"," SRC(2) "}",
	"{\"v\":1,\"id\":\"" ID(3) "\",\"type\":\"chat.file.upload\","
	"\"ts\":\"2026-11-21T10:00:02.000Z\"," ROOM ",\"user\":\"sip:bob@contoso.com\","
	"\"files\":[{\"name\":\"q3.txt\",\"size\":27,\"sha256\":\"@SHA@\"}]," SRC(3) "}",
	"{\"v\":1,\"id\":\"" ID(4) "\",\"type\":\"im.message\",\"ts\":\"2026-11-21T10:00:03.000Z\","
	"\"user\":\"sip:bob@contoso.com\",\"to\":\"sip:alice@contoso.com\",\"text\":\"see q3\","
	SRC(4) "}",
	"{\"v\":1,\"id\":\"" ID(5) "\",\"type\":\"chat.part\",\"ts\":\"2026-11-21T10:00:04.000Z\","
	ROOM ",\"user\":\"sip:bob@contoso.com\"," "\"source\":{\"server\":\"chat02\",\"seq\":9}}",

	"{\"v\":1,\"id\":\"" ID(6) "\",\"type\":\"chat.file.download\","
	"\"ts\":\"2026-11-21T10:00:05.000Z\"," ROOM ",\"user\":\"sip:alice@contoso.com\","
	"\"files\":[{\"name\":\"gone.bin\",\"size\":4,\"sha256\":"
	"\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"}]," SRC(5) "}",
};

/* Which lines each batch holds, and their staging ids (a gap in batch 2). */
static const struct {
	size_t first, n;
	int64_t staging[4];
} batches[] = {
	{ 0, 1, { 1 } },
	{ 1, 4, { 2, 3, 5, 6 } },
	{ 5, 1, { 7 } },
};

struct owned {
	struct ing_event ev;
	char *json;
	size_t len;
	char ts[CV_TIME_BUFSZ];
	struct adp_file files[4];
};

static int die(const char *what, const char *why)
{
	fprintf(stderr, "gen_bundle_seeds: %s: %s\n", what, why);
	exit(1);
}

static void fill(struct owned *o, struct adp_event *e, const char *line, int64_t staging_id)
{
	char err[ING_EVENT_ERRLEN];

	if (ing_event_parse(line, strlen(line), 0, 0, &o->ev, err, sizeof(err)) != 0)
		die(line, err);
	if (ing_event_serialize(&o->ev, &o->json, &o->len) != 0 ||
	    cv_time_format_ms(o->ev.ts_ms, o->ts) != 0)
		die(line, "cannot serialise");
	memset(e, 0, sizeof(*e));
	e->staging_id = staging_id;
	e->id = o->ev.id;
	e->type = ing_event_type_name(o->ev.type);
	e->ts_ms = o->ev.ts_ms;
	e->ts = o->ts;
	e->room = o->ev.room;
	e->user = o->ev.user;
	e->to = o->ev.to;
	e->text = o->ev.text;
	for (size_t i = 0; i < o->ev.nfiles && i < 4; i++)
		o->files[i] = (struct adp_file){ o->ev.files[i].name, o->ev.files[i].size,
						 o->ev.files[i].sha256 };
	e->files = o->ev.nfiles ? o->files : NULL;
	e->nfiles = o->ev.nfiles;
	e->source_server = o->ev.source_server;
	e->source_seq = o->ev.source_seq;
	e->json = o->json;
	e->json_len = o->len;
}

static void copy_file(const char *from, const char *outdir)
{
	const char *base = strrchr(from, '/');
	char to[4096], buf[4096];
	FILE *in, *out;
	size_t n;

	if (snprintf(to, sizeof(to), "%s/%s", outdir, base ? base + 1 : from) >= (int)sizeof(to))
		die(outdir, "path too long");
	in = fopen(from, "rb");
	out = fopen(to, "wb");
	if (!in || !out)
		die(in ? to : from, strerror(errno));
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		if (fwrite(buf, 1, n, out) != n)
			die(to, "cannot write");
	if (ferror(in) || fclose(out) != 0)
		die(to, "cannot copy");
	fclose(in);
	printf("%s\n", to);
}

int main(int argc, char **argv)
{
	char root[] = "/tmp/gen_bundle_seeds.XXXXXX", store[64], data[64], path[256];
	char sha[CV_SHA256_HEX], prev[65] = "", err[256], *text[6], cmd[128];
	struct adp_env env = { .name = "archive" };
	struct owned own[6];
	struct adp_event ev[6];
	void *st = NULL;
	FILE *f;

	if (argc != 2)
		return fprintf(stderr, "usage: %s OUTDIR\n", argv[0]), 2;
	if (!mkdtemp(root))
		die("mkdtemp", strerror(errno));
	snprintf(store, sizeof(store), "%s/store", root);
	snprintf(data, sizeof(data), "%s/var", root);
	if (cv_mkdir_p(store, 0755) != 0 || cv_mkdir_p(data, 0755) != 0)
		die(root, "cannot create directories");
	cv_sha256_hex(attachment, strlen(attachment), sha);
	snprintf(path, sizeof(path), "%s/%s", store, sha);
	f = fopen(path, "w");
	if (!f || fputs(attachment, f) < 0 || fclose(f) != 0)
		die(path, "cannot write");

	for (size_t i = 0; i < 6; i++) {
		const char *at = strstr(lines[i], "@SHA@");

		if (at) {
			if (asprintf(&text[i], "%.*s%s%s", (int)(at - lines[i]), lines[i], sha,
				     at + 5) < 0)
				die("asprintf", "out of memory");
		} else {
			text[i] = strdup(lines[i]);
		}
	}
	env.data_dir = data;
	env.file_store = store;
	if (adp_archive_ops.init(&env, &st, err, sizeof(err)) != 0)
		die("archive init", err);
	memset(own, 0, sizeof(own));
	for (size_t b = 0; b < sizeof(batches) / sizeof(batches[0]); b++) {
		struct adp_batch batch = { 0 };
		size_t first = batches[b].first, n = batches[b].n;

		for (size_t i = 0; i < n; i++)
			fill(&own[first + i], &ev[first + i], text[first + i],
			     batches[b].staging[i]);
		batch.adapter_name = "archive";
		batch.batch_no = (int64_t)b + 1;
		batch.events = &ev[first];
		batch.nevents = n;
		batch.first_staging_id = batches[b].staging[0];
		batch.last_staging_id = batches[b].staging[n - 1];
		batch.chain_prev = prev;
		if (adp_archive_ops.deliver(st, &batch) != ADP_OK)
			die("deliver", batch.reason);
		copy_file(batch.out_path, argv[1]);
		snprintf(prev, sizeof(prev), "%s", batch.out_chain);
	}
	adp_archive_ops.close(st);
	for (size_t i = 0; i < 6; i++) {
		ing_event_clear(&own[i].ev);
		free(own[i].json);
		free(text[i]);
	}
	snprintf(cmd, sizeof(cmd), "chmod -R u+w '%s' && rm -rf '%s'", root, root);
	return system(cmd) == 0 ? 0 : 1;
}
