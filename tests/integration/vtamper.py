#!/usr/bin/env python3
"""vtamper.py — make damaged, forged and synthetic files for t_verify.sh.

Everything follows docs/FORMATS.md with standard tools only (GNU tar with
zstd, hashlib), the way an auditor or an attacker would: a bundle is
unpacked with `tar --zstd -xf`, edited, and packed again with
`tar --zstd --format=pax -cf` in the member order asked for, so the result
is a perfectly readable tar + zstd file whose content no longer matches.

  vtamper.py flip-events BUNDLE          one byte of events.jsonl changed
  vtamper.py manifest-count BUNDLE       manifest event_count + 1
  vtamper.py add-line BUNDLE             an extra event line, member hash fixed
  vtamper.py rm-attachment BUNDLE        the first files/ member removed
  vtamper.py manifest-first BUNDLE       manifest.json packed first
  vtamper.py drop-event BUNDLE           one event removed and the manifest made
                                         consistent again (a source.seq hole)
  vtamper.py tombstone BUNDLE [--shift N] [--bad-manifest] [--break KEY]
                                         write the tombstone of BUNDLE next to it
  vtamper.py export BUNDLE OUT [--flip MEMBER] [--reorder]
                                         a synthetic export package from BUNDLE
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid


def sha(data):
    return hashlib.sha256(data).hexdigest()


def unpack(bundle):
    d = tempfile.mkdtemp(prefix="vtamper.")
    names = subprocess.run(["tar", "--zstd", "-tf", bundle], check=True,
                           capture_output=True, text=True).stdout.split()
    subprocess.run(["tar", "--zstd", "-xf", bundle, "-C", d], check=True)
    return d, names


def pack(d, names, out):
    tmp = out + ".vtamper"
    subprocess.run(["tar", "--zstd", "--format=pax", "-cf", tmp, "-C", d] + names, check=True)
    if os.path.exists(out):
        os.chmod(out, 0o644)
    os.replace(tmp, out)
    shutil.rmtree(d)


def rd(d, name):
    with open(os.path.join(d, name), "rb") as f:
        return f.read()


def wr(d, name, data):
    p = os.path.join(d, name)
    if os.path.exists(p):
        os.chmod(p, 0o644)
    with open(p, "wb") as f:
        f.write(data)


def dump_manifest(m):
    return (json.dumps(m, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def fix_member(m, d, name):
    data = rd(d, name)
    m["members"][name] = {"sha256": sha(data), "size": len(data)}


def ts_of(ev):
    return ev["ts"]


def seq_ranges(seqs):
    out = []
    for s in sorted(seqs):
        if out and s == out[-1][1] + 1:
            out[-1][1] = s
        else:
            out.append([s, s])
    return out


def staging_list(ranges):
    ids = []
    for a, b in ranges:
        ids.extend(range(a, b + 1))
    return ids


def cmd_flip_events(a):
    d, names = unpack(a.bundle)
    data = bytearray(rd(d, "events.jsonl"))
    i = data.index(b'"text":"') + 9      # inside a text: stays a valid event
    data[i] ^= 0x01
    wr(d, "events.jsonl", bytes(data))
    pack(d, names, a.bundle)


def cmd_manifest_count(a):
    d, names = unpack(a.bundle)
    m = json.loads(rd(d, "manifest.json"))
    m["event_count"] += 1
    wr(d, "manifest.json", dump_manifest(m))
    pack(d, names, a.bundle)


def cmd_add_line(a):
    d, names = unpack(a.bundle)
    lines = rd(d, "events.jsonl").splitlines(keepends=True)
    ev = json.loads(lines[0])
    ev["id"] = str(uuid.uuid4())
    lines.append((json.dumps(ev, separators=(",", ":"), ensure_ascii=False) + "\n").encode())
    wr(d, "events.jsonl", b"".join(lines))
    m = json.loads(rd(d, "manifest.json"))
    fix_member(m, d, "events.jsonl")
    wr(d, "manifest.json", dump_manifest(m))
    pack(d, names, a.bundle)


def cmd_rm_attachment(a):
    d, names = unpack(a.bundle)
    files = [n for n in names if n.startswith("files/")]
    if not files:
        sys.exit("vtamper: %s has no attachment" % a.bundle)
    names.remove(files[0])
    pack(d, names, a.bundle)
    print(files[0])


def cmd_manifest_first(a):
    d, names = unpack(a.bundle)
    names.remove("manifest.json")
    pack(d, ["manifest.json"] + names, a.bundle)


def cmd_drop_event(a):
    """Remove one event and rewrite the manifest so the bundle is sound on
    its own: only the missing source.seq can tell."""
    d, names = unpack(a.bundle)
    lines = rd(d, "events.jsonl").splitlines(keepends=True)
    m = json.loads(rd(d, "manifest.json"))
    ids = staging_list(m["staging_ids"])
    evs = [json.loads(l) for l in lines]
    # Not the newest seq of its server in this bundle: a hole, not an end.
    k = next(i for i in range(len(evs) // 2, len(evs))
             if "files" not in evs[i] and any(
                 e["source"]["server"] == evs[i]["source"]["server"] and
                 e["source"]["seq"] > evs[i]["source"]["seq"] for e in evs))
    gone = evs[k]
    del lines[k]
    del ids[k]
    evs = [json.loads(l) for l in lines]
    wr(d, "events.jsonl", b"".join(lines))
    m["event_count"] = len(lines)
    m["staging_ids"] = seq_ranges(ids)
    m["first_staging_id"], m["last_staging_id"] = ids[0], ids[-1]
    src = {}
    for e in evs:
        s = src.setdefault(e["source"]["server"], [])
        s.append(e["source"]["seq"])
    m["sources"] = {k2: {"first_seq": min(v), "last_seq": max(v), "count": len(v)}
                    for k2, v in src.items()}
    m["min_ts"] = min(ts_of(e) for e in evs)
    m["max_ts"] = max(ts_of(e) for e in evs)
    m["rooms"] = sorted({e["room"] for e in evs if "room" in e})
    m["users"] = sorted({e["user"] for e in evs} | {e["to"] for e in evs if "to" in e})
    fix_member(m, d, "events.jsonl")
    wr(d, "manifest.json", dump_manifest(m))
    pack(d, names, a.bundle)
    print("%s %d" % (gone["source"]["server"], gone["source"]["seq"]))


def bundle_manifest(bundle):
    man = subprocess.run(["tar", "--zstd", "-xOf", bundle, "manifest.json"], check=True,
                         capture_output=True).stdout
    ev = subprocess.run(["tar", "--zstd", "-xOf", bundle, "events.jsonl"], check=True,
                        capture_output=True).stdout
    return man, [json.loads(l) for l in ev.splitlines()]


def cmd_tombstone(a):
    man, evs = bundle_manifest(a.bundle)
    m = json.loads(man)
    src = {}
    for e in evs:
        src.setdefault(e["source"]["server"], []).append(e["source"]["seq"])
    first, last = m["first_staging_id"] + a.shift, m["last_staging_id"] + a.shift
    name = "%s-%016d-%016d.tar.zst" % (m["adapter"], first, last)
    t = {"format": "chatvault-tombstone/1",
         "bundle": name,
         "bundle_sha256": sha(open(a.bundle, "rb").read()),
         "adapter": m["adapter"], "batch_no": m["batch_no"],
         "first_staging_id": first, "last_staging_id": last,
         "event_count": m["event_count"],
         "staging_ids": [[x + a.shift, y + a.shift] for x, y in m["staging_ids"]],
         "min_ts": m["min_ts"], "max_ts": m["max_ts"],
         "manifest_sha256": sha(man),
         "prev_manifest_sha256": m["prev_manifest_sha256"],
         "sources": {k: seq_ranges(v) for k, v in sorted(src.items())},
         "purged_at": "2032-11-21T10:00:00.000Z",
         "reason": "retention: finra-4511 2192 days elapsed",
         "audit_id": 42}
    if a.bad_manifest:
        t["manifest_sha256"] = sha(man + b" ")
    if a.break_key:
        del t[a.break_key]
    out = os.path.join(os.path.dirname(a.bundle), name[:-len(".tar.zst")] + ".tombstone.json")
    with open(out, "w") as f:
        json.dump(t, f, separators=(",", ":"))
    print(out)


def cmd_export(a):
    d, names = unpack(a.bundle)
    man = rd(d, "manifest.json")
    m = json.loads(man)
    files = [n for n in names if n.startswith("files/")]
    evs = rd(d, "events.jsonl")
    wr(d, "README.txt", b"chatvault export package (synthetic, for t_verify)\n")
    members = {}
    for n in ["README.txt", "events.jsonl"] + files:
        members[n] = {"sha256": sha(rd(d, n)), "size": len(rd(d, n))}
    lines = [json.loads(l) for l in evs.splitlines()]
    pm = {"format": "chatvault-export/1",
          "query": {"from": "2026-11-20T00:00:00.000Z", "to": "2026-11-22T00:00:00.000Z",
                    "rooms": [], "users": [], "format": "jsonl"},
          "exported_by": "auditor@host", "exported_at": "2026-11-23T10:00:00.000Z",
          "tool": "chatvault test",
          "counts": {"events": len(lines), "rooms": len({e.get("room") for e in lines} - {None}),
                     "users": len({e["user"] for e in lines}), "attachments": len(files),
                     "omitted_erased": 0},
          "source_bundles": [{"name": os.path.basename(a.bundle), "adapter": m["adapter"],
                              "batch_no": m["batch_no"],
                              "sha256": sha(open(a.bundle, "rb").read()),
                              "manifest_sha256": sha(man)}],
          "purged_in_range": [], "erasures": [], "members": members}
    os.remove(os.path.join(d, "manifest.json"))
    wr(d, "manifest.json", (json.dumps(pm, indent=2) + "\n").encode())
    if a.flip:
        data = bytearray(rd(d, a.flip))
        data[len(data) // 2] ^= 0x20
        wr(d, a.flip, bytes(data))
    order = ["README.txt", "events.jsonl"] + files + ["manifest.json"]
    if a.reorder:
        order = ["README.txt"] + files + ["events.jsonl", "manifest.json"]
    pack(d, order, a.out)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    for c in ("flip-events", "manifest-count", "add-line", "rm-attachment",
              "manifest-first", "drop-event"):
        sub.add_parser(c).add_argument("bundle")
    t = sub.add_parser("tombstone")
    t.add_argument("bundle")
    t.add_argument("--shift", type=int, default=0)
    t.add_argument("--bad-manifest", action="store_true")
    t.add_argument("--break", dest="break_key", default=None)
    e = sub.add_parser("export")
    e.add_argument("bundle")
    e.add_argument("out")
    e.add_argument("--flip", default=None)
    e.add_argument("--reorder", action="store_true")
    a = ap.parse_args()
    globals()["cmd_" + a.cmd.replace("-", "_")](a)


if __name__ == "__main__":
    main()
