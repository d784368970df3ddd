#!/usr/bin/env python3
"""gen_events.py — realistic chatvault events as JSON Lines, for tests, the
demo and the benchmarks.  Deterministic for a given --seed.

Every event carries an id and a ts (so a test knows exactly what it emitted);
source is left to the producer to stamp unless --source is given.
"""
import argparse
import json
import random
import sys
import uuid
from datetime import datetime, timedelta, timezone

WORDS = ("trade order fill price client desk risk limit swap bond equity fx rate "
         "spread book hedge quote bid ask call put settle margin report audit "
         "déjà vu Größe 東京 ✓ <tag> & \"quoted\" 'single'").split()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--rooms", type=int, default=24)
    ap.add_argument("--users", type=int, default=300)
    ap.add_argument("--domain", default="contoso.com")
    ap.add_argument("--start", default="2026-11-20T08:00:00Z")
    ap.add_argument("--span-hours", type=float, default=24.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--source", default=None, help="stamp source.server with this name")
    ap.add_argument("--text-bytes", type=int, default=120)
    ap.add_argument("--room-uris", default=None,
                    help="file with one room URI a line: use these rooms (--rooms ignored); "
                         "a line may go on with TAB-separated fields, the 4th a comma-separated "
                         "member list: then room events are by members only")
    ap.add_argument("--user-uris", default=None,
                    help="file with one user URI a line: use these users (--users ignored)")
    a = ap.parse_args()

    rnd = random.Random(a.seed)
    start = datetime.strptime(a.start, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    step = a.span_hours * 3600.0 / max(a.count, 1)
    rooms = ["ma-chan://%s/%s" % (a.domain, uuid.UUID(int=rnd.getrandbits(128)))
             for _ in range(a.rooms)]
    users = ["sip:user%03d@%s" % (i, a.domain) for i in range(a.users)]
    members = {}
    if a.room_uris:
        rooms = []
        for l in open(a.room_uris, encoding="utf-8"):
            f = l.rstrip("\n").split("\t")
            if not f[0].strip():
                continue
            rooms.append(f[0].strip())
            if len(f) > 3 and f[3].strip():
                members[rooms[-1]] = f[3].split(",")
    if a.user_uris:
        users = [l.split()[0] for l in open(a.user_uris, encoding="utf-8") if l.strip()]
    out = sys.stdout
    for i in range(a.count):
        ts = start + timedelta(seconds=i * step)
        r = rnd.random()
        ev = {"v": 1, "id": str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
              "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ts.microsecond // 1000)}
        user = rnd.choice(users)
        if r < 0.62:
            ev.update(type="chat.post", room=rnd.choice(rooms), user=user)
            words = []
            while len(" ".join(words).encode()) < a.text_bytes:
                words.append(rnd.choice(WORDS))
            ev["text"] = " ".join(words)
        elif r < 0.70:
            ev.update(type="chat.join", room=rnd.choice(rooms), user=user)
        elif r < 0.76:
            ev.update(type="chat.part", room=rnd.choice(rooms), user=user)
        elif r < 0.80:
            ev.update(type="chat.backchat", room=rnd.choice(rooms), user=user)
        elif r < 0.82:
            ev.update(type="chat.file.upload", room=rnd.choice(rooms), user=user,
                      files=[{"name": "report-%d.pdf" % i, "size": rnd.randint(1, 10**6),
                              "sha256": "%064x" % rnd.getrandbits(256)}])
        else:
            to = rnd.choice(users)
            ev.update(type="im.message", user=user, to=to,
                      text="im %d %s" % (i, rnd.choice(WORDS)))
        if ev.get("room") in members:
            ev["user"] = rnd.choice(members[ev["room"]])
        if a.source:
            ev["source"] = {"server": a.source, "seq": i + 1}
        out.write(json.dumps(ev, ensure_ascii=False, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
