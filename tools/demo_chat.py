#!/usr/bin/env python3
"""demo_chat.py — the chat side of `make demo` (tools/demo.sh), stdlib only.

  demo_chat.py setup --cv "CHATVAULT -c CONF" --domain D --users N --rooms N
                     --password-file F --out DIR
      Creates what is missing (idempotent): N users (`chatvault user add`, all
      with the password in F) and N rooms (`chatvault room add`) with members
      (`chatvault room member add`).  Writes DIR/demo-users.txt (one URI a
      line) and DIR/demo-rooms.tsv (URI, name, private, members).

  demo_chat.py traffic --server HOST:PORT --domain D --password-file F
                       --dir DIR [--duration S] [--seed N]
      Drives live traffic through `chatvault chatd` over SIP/UDP, one thread
      and one socket per user, the way a Lync-style client does:
        REGISTER with digest (401, then 200 once the session's start event
        is durable); MESSAGEs to colleagues who are signed in (the recipient
        answers the forwarded MESSAGE with 200); persistent chat: INVITE the
        Lookup service sip:ocschat@D, cmd:requri, BYE, INVITE the Channel
        service it names, getserverinfo, getassociations, bjoin of some member
        rooms, bccontext, grpchat posts (answering the fan-out of the others'
        posts and ntc:join/ntc:part with 200), cmd:part, BYE; one file up and
        down through the file service with getfutok/getfdtok tokens; finally
        REGISTER Expires: 0.
      Prints one JSON object: what chatd acknowledged (the events it promised
      are durable) and what went wrong.  Exit 1 when a user could not sign in
      or a request got no answer.

Timestamps are the server's: the traffic is a compressed "day" that happens
during the demo run (about --duration seconds).
"""
import argparse
import hashlib
import json
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

FIRST = ("alice bob carol dave erin frank grace heidi ivan judy mallory niaj olivia peggy "
         "rupert sybil trent victor walter wendy xavier yvonne zoe aaron bianca chen "
         "dmitri elena farid gita hiro ines jamal kenji lena marco nadia omar priya quinn "
         "rosa sanjay tomas uma").split()
LAST = ("smith jones garcia miller davis lopez wilson anderson thomas moore martin lee "
        "clark lewis walker young allen king wright scott green baker adams nelson hill "
        "campbell mitchell roberts carter phillips evans turner torres parker collins "
        "edwards stewart morris murphy cook").split()
ROOMS = [
    ("General", "everyone, announcements", False), ("Equities Desk", "cash equities", False),
    ("FX Spot", "G10 and EM spot", False), ("FX Options", "vol, risk reversals", False),
    ("Rates", "govies and swaps", False), ("Credit", "IG and HY", False),
    ("Commodities", "energy and metals", False), ("Repo", "funding", False),
    ("Sales EMEA", "client flow", False), ("Sales APAC", "client flow", False),
    ("Sales Americas", "client flow", False), ("Research", "notes and calls", False),
    ("Risk", "limits and VaR", False), ("Middle Office", "bookings, breaks", False),
    ("Settlements", "fails and SSIs", False), ("Ops & Dev", "deploys", False),
    ("Market Data", "feeds and outages", False), ("Algo Trading", "execution algos", False),
    ("Prime Brokerage", "PB clients", False), ("Treasury", "liquidity", False),
    ("Structured Products", "notes", False), ("ETF Desk", "creations/redemptions", False),
    ("Syndicate", "new issues", False), ("Client Onboarding", "KYC", False),
    ("Quant Lab", "models", False), ("Helpdesk", "IT support", False),
    ("Town Hall Q&A", "questions for management", False), ("Social", "lunch, football", False),
    ("London Floor", "site", False), ("New York Floor", "site", False),
    ("Tokyo Floor", "site", False), ("Legal", "contracts", True),
    ("Compliance", "surveillance", True), ("M&A Deal Team", "project falcon", True),
    ("Board", "board papers", True), ("HR Partners", "people matters", True),
    ("Audit", "internal audit", True), ("Incident Bridge", "sev1", False),
]
WORDS = ("trade order fill price client desk risk limit swap bond equity fx rate spread book "
         "hedge quote bid ask call put settle margin report audit ticket break cutoff "
         "liquidity vol curve basis roll expiry notional coupon yield duration").split()
IM_LINES = [
    "can you check ticket {n}?", "got the {w} for {c}, sending now",
    "are you around for a quick call about the {w}?", "{c} wants a {w} on {n}k",
    "thanks, booked", "lunch at 12:30?", "the {w} looks off by {n} bps, can you look",
    "yes, confirmed with {c}", "running 5 min late", "please resend the {w} report",
    "EOD {w} is done", "ok, let me ask {c}",
]
POST_LINES = [
    "{c} is asking for a {w} in {n}m", "morning all, {w} desk is open",
    "heads up: {w} feed delayed, investigating", "done {n}m with {c} at the {w}",
    "who covers {c} today?", "reminder: {w} cutoff at 16:00", "fixed, thanks {u}",
    "{w} and {w2} both wider this morning", "can someone check the {w} break on ticket {n}?",
    "new {w} limits effective tomorrow", "great job on the {w} yesterday",
    "call at 3pm re {c} {w} — dial-in in the calendar",
]
CLIENTS = ("Contoso Fabrikam Northwind Tailspin Litware Adatum Wingtip Proseware "
           "Woodgrove Fourth-Coffee").split()


def say(rnd, lines, users=()):
    return rnd.choice(lines).format(n=rnd.randint(2, 9999), w=rnd.choice(WORDS),
                                    w2=rnd.choice(WORDS), c=rnd.choice(CLIENTS),
                                    u=(rnd.choice(users).split(":")[1].split("@")[0]
                                       if users else "all"))


# ---------------------------------------------------------------- setup

def cv_run(cv, args, stdin=None):
    return subprocess.run(cv + args, input=stdin, capture_output=True, text=True)


def setup(a):
    cv = a.cv.split()
    rnd = random.Random(a.seed)
    names = []
    for f in FIRST:
        for l in LAST:
            names.append("%s.%s" % (f, l))
    rnd.shuffle(names)
    users = ["sip:%s@%s" % (n, a.domain) for n in sorted(names[:a.users])]
    r = cv_run(cv, ["user", "list", "--json"])
    if r.returncode:
        sys.exit("demo_chat: user list: " + r.stderr.strip())
    have = {u["uri"] for u in json.loads(r.stdout or "[]")}
    missing = [u for u in users if u not in have]

    def add_user(u):
        r = cv_run(cv, ["user", "add", u, "--password-file", a.password_file])
        if r.returncode and "exist" not in r.stderr:
            raise SystemExit("demo_chat: user add %s: %s" % (u, r.stderr.strip()))

    with ThreadPoolExecutor(4) as ex:
        list(ex.map(add_user, missing))

    r = cv_run(cv, ["room", "list", "--json"])
    if r.returncode:
        sys.exit("demo_chat: room list: " + r.stderr.strip())
    rooms = {x["name"]: x for x in json.loads(r.stdout or "[]") if x.get("uri", "").startswith(
        "ma-chan://%s/" % a.domain)}
    made = 0
    out = []
    for i, (name, desc, private) in enumerate(ROOMS[:a.rooms]):
        if name not in rooms:
            args = ["room", "add", name, "--domain", a.domain, "--description", desc,
                    "--topic", desc]
            if private:
                args.append("--private")
            r = cv_run(cv, args)
            if r.returncode:
                sys.exit("demo_chat: room add %s: %s" % (name, r.stderr.strip()))
            rooms[name] = {"uri": r.stdout.strip(), "members": 0}
            made += 1
        uri = rooms[name]["uri"]
        # members: deterministic per room; General has more
        rr = random.Random("%d/%s" % (a.seed, name))
        size = 40 if i == 0 else rr.randint(6, 22 if not private else 10)
        members = sorted(rr.sample(users, min(size, len(users))))
        out.append((uri, name, private, members))
    # member add only where a room lacks members (idempotent across runs)
    jobs = []
    for uri, name, private, members in out:
        r = cv_run(cv, ["room", "member", "list", uri, "--json"])
        have = {m["user"] for m in json.loads(r.stdout or "[]")} if r.returncode == 0 else set()
        for k, m in enumerate(members):
            if m not in have:
                jobs.append((uri, m, k == 0))

    def add_member(j):
        uri, m, mgr = j
        r = cv_run(cv, ["room", "member", "add", uri, m] + (["--manager"] if mgr else []))
        if r.returncode and "exist" not in r.stderr:
            raise SystemExit("demo_chat: room member add %s %s: %s" % (uri, m, r.stderr.strip()))

    with ThreadPoolExecutor(4) as ex:
        list(ex.map(add_member, jobs))
    with open(os.path.join(a.out, "demo-users.txt"), "w") as f:
        f.write("".join(u + "\n" for u in users))
    with open(os.path.join(a.out, "demo-rooms.tsv"), "w") as f:
        for uri, name, private, members in out:
            f.write("%s\t%s\t%d\t%s\n" % (uri, name, private, ",".join(members)))
    print("demo: %d users (%d new), %d rooms (%d new), %d memberships added" % (
        len(users), len(missing), len(out), made, len(jobs)))


# ---------------------------------------------------------------- SIP

COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact",
           "l": "content-length", "c": "content-type"}


def parse(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("utf-8", "replace").split("\r\n")
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        k = k.strip().lower()
        hdrs.setdefault(COMPACT.get(k, k), []).append(v.strip())
    return lines[0], hdrs, body.decode("utf-8", "replace")


def rnd_hex(n=6):
    return os.urandom(n).hex()


def md5(x):
    return hashlib.md5(x.encode()).hexdigest()


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.c = {}
        self.errors = []

    def add(self, k, n=1):
        with self.lock:
            self.c[k] = self.c.get(k, 0) + n

    def err(self, msg):
        with self.lock:
            if len(self.errors) < 20:
                self.errors.append(msg)
            self.c["errors"] = self.c.get("errors", 0) + 1


class NoAnswer(Exception):
    pass


class UA:
    """One user: one UDP socket (its registered flow), used for everything."""

    def __init__(self, user, password, dom, server, stats):
        self.user, self.password, self.dom, self.dst = user, password, dom, server
        self.aor = "sip:%s@%s" % (user, dom)
        self.stats = stats
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.s.bind(("127.0.0.1", 0))
        self.lport = self.s.getsockname()[1]
        self.contact = "<sip:%s@127.0.0.1:%d>" % (user, self.lport)
        self.reg_callid = rnd_hex() + "@demo"
        self.reg_tag = rnd_hex()
        self.reg_cseq = 0
        self.seen = set()          # (call-id, cseq) of requests already counted
        self.infos = []            # bodies of server INFOs not consumed yet
        self.got_im = 0

    def via(self):
        return "Via: SIP/2.0/UDP 127.0.0.1:%d;rport;branch=z9hG4bK%s\r\n" % (self.lport, rnd_hex())

    # answer a request chatd sent us (forwarded MESSAGE, INFO, BYE, NOTIFY ...)
    def answer(self, start, h, body):
        method = start.split(" ", 1)[0]
        resp = "SIP/2.0 200 OK\r\n"
        for k in ("via", "from", "to", "call-id", "cseq"):
            for v in h.get(k, []):
                if k == "to" and ";tag=" not in v:
                    v += ";tag=" + md5(h.get("call-id", [""])[0])[:10]
                resp += "%s: %s\r\n" % (k.title().replace("Id", "ID"), v)
        self.s.sendto((resp + "Content-Length: 0\r\n\r\n").encode(), self.dst)
        key = (h.get("call-id", [""])[0], h.get("cseq", [""])[0])
        if key in self.seen:
            return
        self.seen.add(key)
        if method == "MESSAGE":
            self.got_im += 1
            self.stats.add("im_received")
        elif method == "INFO":
            self.infos.append(body)
            if "<grpchat" in body:
                self.stats.add("fanout_received")

    def pump(self, timeout):
        """Read one datagram; answer requests; return a response or None."""
        self.s.settimeout(max(timeout, 0.001))
        try:
            raw = self.s.recv(65536)
        except socket.timeout:
            return None
        start, h, body = parse(raw)
        if start.startswith("SIP/2.0 "):
            return start, h, body
        self.answer(start, h, body)
        return None

    def idle(self, seconds):
        end = time.time() + seconds
        while True:
            left = end - time.time()
            if left <= 0:
                return
            self.pump(left)

    def transact(self, msg, callid, cseq_method):
        """Send a request (retransmitted like a UAC on UDP) and return the final
        response, answering what chatd sends meanwhile."""
        data = msg.encode() if isinstance(msg, str) else msg
        t1, sent, deadline = 0.5, 0, time.time() + 32
        nxt = time.time()
        provisional = False
        while time.time() < deadline:
            if time.time() >= nxt and not (provisional and cseq_method.endswith("INVITE")):
                self.s.sendto(data, self.dst)
                sent += 1
                nxt = time.time() + min(t1 * (2 ** (sent - 1)), 4)
            r = self.pump(max(0.0, min(nxt, deadline) - time.time()))
            if r is None:
                continue
            start, h, body = r
            if h.get("call-id", [""])[0] != callid or \
               " ".join(h.get("cseq", [""])[0].split()) != cseq_method:
                continue
            if start.startswith("SIP/2.0 1"):
                provisional = True
                continue
            return r
        raise NoAnswer("%s %s: no answer" % (self.user, cseq_method))

    def _register(self, expires, auth=""):
        self.reg_cseq += 1
        msg = ("REGISTER sip:%s SIP/2.0\r\n%sFrom: <%s>;tag=%s\r\nTo: <%s>\r\nCall-ID: %s\r\n"
               "CSeq: %d REGISTER\r\nContact: %s\r\n%sMax-Forwards: 70\r\nExpires: %d\r\n"
               "User-Agent: chatvault-demo\r\nContent-Length: 0\r\n\r\n") % (
                   self.dom, self.via(), self.aor, self.reg_tag, self.aor, self.reg_callid,
                   self.reg_cseq, self.contact, auth, expires)
        return self.transact(msg, self.reg_callid, "%d REGISTER" % self.reg_cseq)

    def digest(self, challenge, method, uri):
        f = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
        cn = rnd_hex()
        ha1 = md5("%s:%s:%s" % (self.user, f["realm"], self.password))
        ha2 = md5("%s:%s" % (method, uri))
        resp = md5("%s:%s:00000001:%s:auth:%s" % (ha1, f["nonce"], cn, ha2))
        return ('Authorization: Digest username="%s", realm="%s", nonce="%s", uri="%s", '
                'response="%s", algorithm=MD5, qop=auth, nc=00000001, cnonce="%s"\r\n') % (
                    self.user, f["realm"], f["nonce"], uri, resp, cn)

    def register(self, expires=3600):
        for attempt in range(5):
            r = self._register(expires)
            if r[0].startswith("SIP/2.0 401"):
                r = self._register(expires, self.digest(r[1]["www-authenticate"][0], "REGISTER",
                                                        "sip:" + self.dom))
            if r[0].startswith("SIP/2.0 503"):
                time.sleep(float(r[1].get("retry-after", ["1"])[0].split()[0]) / 10 + 0.2)
                continue
            return r[0]
        return r[0]

    def message(self, to, text):
        ruri = "sip:%s" % to.split(":", 1)[1]
        callid = rnd_hex() + "@demo"
        body = text.encode()
        for attempt in range(5):
            msg = ("MESSAGE %s SIP/2.0\r\n%sFrom: <%s>;tag=%s\r\nTo: <%s>\r\nCall-ID: %s\r\n"
                   "CSeq: %d MESSAGE\r\nMax-Forwards: 70\r\nContent-Type: text/plain; charset=UTF-8\r\n"
                   "Content-Length: %d\r\n\r\n") % (ruri, self.via(), self.aor, rnd_hex(), ruri,
                                                  callid, attempt + 1, len(body))
            r = self.transact(msg.encode() + body, callid, "%d MESSAGE" % (attempt + 1))
            if r[0].startswith("SIP/2.0 503"):
                time.sleep(1)
                continue
            return r[0]
        return r[0]

    # ---- dialogs with the Lookup and Channel services
    def invite(self, target):
        d = {"callid": rnd_hex() + "@demo", "tag": rnd_hex(), "cseq": 1, "target": target,
             "env": 100, "remote": target, "totag": ""}
        sdp = ("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=session\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
               "m=message %d sip null\r\n") % self.lport
        via = self.via()
        msg = ("INVITE %s SIP/2.0\r\n%sFrom: <%s>;tag=%s\r\nTo: <%s>\r\nCall-ID: %s\r\n"
               "CSeq: 1 INVITE\r\nContact: %s\r\nMax-Forwards: 70\r\n"
               "Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s") % (
                   target, via, self.aor, d["tag"], target, d["callid"], self.contact,
                   len(sdp), sdp)
        r = self.transact(msg, d["callid"], "1 INVITE")
        to = r[1].get("to", [""])[0]
        m = re.search(r";tag=([^;>\s]+)", to)
        d["totag"] = m.group(1) if m else ""
        if r[0].startswith("SIP/2.0 2"):
            m = re.search(r"<([^>]+)>", r[1].get("contact", [""])[0])
            if m:
                d["remote"] = m.group(1)
            ack = ("ACK %s SIP/2.0\r\n%sFrom: <%s>;tag=%s\r\nTo: <%s>;tag=%s\r\nCall-ID: %s\r\n"
                   "CSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n") % (
                       d["remote"], self.via(), self.aor, d["tag"], target, d["totag"],
                       d["callid"])
            self.s.sendto(ack.encode(), self.dst)
            return d, r[0]
        # non-2xx: ACK in the INVITE's transaction (same branch)
        ack = ("ACK %s SIP/2.0\r\n%sFrom: <%s>;tag=%s\r\nTo: %s\r\nCall-ID: %s\r\n"
               "CSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n") % (
                   target, via, self.aor, d["tag"], to, d["callid"])
        self.s.sendto(ack.encode(), self.dst)
        return None, r[0]

    def in_dialog(self, d, method, body=""):
        d["cseq"] += 1
        b = body.encode()
        msg = ("%s %s SIP/2.0\r\n%sFrom: <%s>;tag=%s\r\nTo: <%s>;tag=%s\r\nCall-ID: %s\r\n"
               "CSeq: %d %s\r\nMax-Forwards: 70\r\n%sContent-Length: %d\r\n\r\n") % (
                   method, d["remote"], self.via(), self.aor, d["tag"], d["target"], d["totag"],
                   d["callid"], d["cseq"], method,
                   "Content-Type: text/plain\r\n" if body else "", len(b))
        return self.transact(msg.encode() + b, d["callid"], "%d %s" % (d["cseq"], method))

    def xccos(self, d, inner):
        """One XCCOS command in an INFO; returns (resp code, reply envelope)."""
        d["env"] += 1
        env = d["env"]
        body = '<xccos ver="1" envid="%d" xmlns="urn:parlano:xml:ns:xccos">%s</xccos>' % (env, inner)
        for attempt in range(6):
            r = self.in_dialog(d, "INFO", body)
            if r[0].startswith("SIP/2.0 503"):
                self.idle(float(r[1].get("retry-after", ["5"])[0].split()[0]) / 5)
                continue
            if not r[0].startswith("SIP/2.0 200"):
                return int(r[0].split()[1]), ""
            want = 'envid="%d"/>' % env
            deadline = time.time() + 30
            while time.time() < deadline:
                for i, b in enumerate(self.infos):
                    if "<rpl " in b and want in b:
                        del self.infos[i]
                        m = re.search(r'<resp code="(\d+)"', b)
                        code = int(m.group(1)) if m else 0
                        if code == 503 and attempt < 5:
                            break
                        return code, b
                else:
                    self.pump(deadline - time.time())
                    continue
                break          # resp 503: send again
            else:
                raise NoAnswer("%s: no XCCOS reply to envid %d" % (self.user, env))
            self.idle(0.5)
        return 503, ""


def xesc(s):
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def traffic(a):
    host, port = a.server.rsplit(":", 1)
    server = (host, int(port))
    password = open(a.password_file, encoding="utf-8").readline().rstrip("\r\n")
    users = [l.strip() for l in open(os.path.join(a.dir, "demo-users.txt")) if l.strip()]
    rooms = []
    for l in open(os.path.join(a.dir, "demo-rooms.tsv"), encoding="utf-8"):
        uri, name, private, members = l.rstrip("\n").split("\t")
        rooms.append({"uri": uri, "name": name, "members": members.split(",")})
    member_of = {}
    for r in rooms:
        for m in r["members"]:
            member_of.setdefault(m, []).append(r)
    seed = a.seed if a.seed is not None else int.from_bytes(os.urandom(4), "big")
    stats = Stats()
    n = len(users)
    barrier = threading.Barrier(n)
    file_user = users[0] if a.file else None
    for uri in users:
        if uri in rooms[0]["members"]:
            file_user = uri if a.file else None
            break
    t0 = time.time()

    def run(idx, uri):
        rnd = random.Random("%d/%s" % (seed, uri))
        ua = UA(uri.split(":")[1].split("@")[0], password, a.domain, server, stats)
        signed_in = False
        try:
            time.sleep(rnd.random() * 2)       # people arrive over the morning
            st = ua.register()
            signed_in = st.startswith("SIP/2.0 200")
            if signed_in:
                stats.add("sessions")
            else:
                stats.err("%s REGISTER: %s" % (uri, st))
        except NoAnswer as e:
            stats.err(str(e))
        barrier.wait()
        try:
            if signed_in:
                day(ua, uri, rnd)
        except NoAnswer as e:
            stats.err(str(e))
        except Exception as e:                  # keep the others going
            stats.err("%s: %r" % (uri, e))
        try:
            ua.idle(1.0)
        except Exception:
            pass
        barrier.wait()
        try:
            ua.idle(0.5)
            if signed_in:
                st = ua.register(expires=0)
                if st.startswith("SIP/2.0 200"):
                    stats.add("signouts")
                else:
                    stats.err("%s un-REGISTER: %s" % (uri, st))
        except NoAnswer as e:
            stats.err(str(e))
        ua.s.close()

    def day(ua, uri, rnd):
        end = time.time() + a.duration
        others = [u for u in users if u != uri]
        contacts = rnd.sample(others, min(6, len(others)))
        if not contacts:
            return
        do_chat = rnd.random() < a.chat_share or uri == file_user
        ims = rnd.randint(2, 2 * a.ims - 2)
        plan = ["im"] * ims + (["chat"] if do_chat else [])
        rnd.shuffle(plan)
        gap = a.duration / (len(plan) + 1)
        for act in plan:
            ua.idle(rnd.uniform(0.3, 1.7) * gap * 0.8)
            if act == "im":
                to = rnd.choice(contacts)
                st = ua.message(to, say(rnd, IM_LINES))
                if st.startswith("SIP/2.0 200") or st.startswith("SIP/2.0 202"):
                    stats.add("ims")
                else:
                    stats.err("%s MESSAGE to %s: %s" % (uri, to, st))
            else:
                pchat(ua, uri, rnd, max(end - time.time(), 3))

    def pchat(ua, uri, rnd, budget):
        # Lookup: which Channel service?
        d, st = ua.invite("sip:ocschat@%s" % a.domain)
        if not d:
            stats.err("%s INVITE ocschat: %s" % (uri, st))
            return
        code, rpl = ua.xccos(d, '<cmd id="cmd:requri" seqid="1"><data></data></cmd>')
        ua.in_dialog(d, "BYE")
        m = re.search(r'uib uri="([^"]+)"', rpl)
        if code != 200 or not m:
            stats.err("%s requri: %d" % (uri, code))
            return
        stats.add("lookups")
        d, st = ua.invite(m.group(1))
        if not d:
            stats.err("%s INVITE %s: %s" % (uri, m.group(1), st))
            return
        stats.add("channel_sessions")
        ua.xccos(d, '<cmd id="cmd:getserverinfo" seqid="1"><data><sib domain="%s" infoType="123"/>'
                    '</data></cmd>' % a.domain)
        code, rpl = ua.xccos(d, '<cmd id="cmd:getassociations" seqid="1"><data></data></cmd>')
        mine = re.findall(r'chanib [^>]*uri="(ma-chan://[^"]+)"', rpl)
        if not mine:
            mine = [r["uri"] for r in member_of.get(uri, [])]
        if uri == file_user:
            pick = [rooms[0]["uri"]] + [x for x in mine if x != rooms[0]["uri"]][:1]
        else:
            pick = rnd.sample(mine, min(len(mine), rnd.randint(1, 3))) if mine else []
        if not pick:
            ua.in_dialog(d, "BYE")
            return
        chanids = "".join('<chanid key="%d" domain="%s" value="%s"/>' % (
            k, x.split("/")[2], x.split("/")[3]) for k, x in enumerate(pick))
        code, rpl = ua.xccos(d, '<cmd id="cmd:bjoin" seqid="1"><data>%s</data></cmd>' % chanids)
        if code != 200:
            stats.err("%s bjoin: %d" % (uri, code))
            ua.in_dialog(d, "BYE")
            return
        joined = [x for x in pick if ('uri="%s"' % x) in rpl] or pick
        stats.add("joins", len(joined))
        for x in joined:
            code, _ = ua.xccos(d, '<cmd id="cmd:bccontext" seqid="1"><data><chanib uri="%s"/>'
                                  '<bcq><last cnt="25"/></bcq></data></cmd>' % x)
            if code == 200:
                stats.add("history_reads")
        posts = rnd.randint(1, 2 * a.posts - 1)
        t_end = time.time() + budget * 0.8
        for k in range(posts):
            ua.idle(max(0.05, (t_end - time.time()) / (posts - k + 1)) * rnd.uniform(0.5, 1.0))
            x = rnd.choice(joined)
            members = next((r["members"] for r in rooms if r["uri"] == x), [])
            text = say(rnd, POST_LINES, members)
            code, _ = ua.xccos(d, '<grpchat id="grpchat" seqid="1" chanUri="%s" author="%s" '
                                  'ts="%s"><chat>%s</chat></grpchat>' % (
                                      x, uri, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                      xesc(text)))
            if code == 200:
                stats.add("posts")
            else:
                stats.err("%s grpchat: %d" % (uri, code))
        if uri == file_user:
            files(ua, d, joined[0], rnd)
        if len(joined) > 1:
            code, _ = ua.xccos(d, '<cmd id="cmd:part" seqid="1"><data><chanib uri="%s"/></data>'
                                  '</cmd>' % joined[-1])
            if code == 200:
                stats.add("parts")
        ua.in_dialog(d, "BYE")        # parts the rest (chat.part "bye")
        stats.add("parts_at_bye", len(joined) - (1 if len(joined) > 1 else 0))

    def files(ua, d, room, rnd):
        name = "q3-%s-risk-report.csv" % time.strftime("%Y%m%d")
        data = ("desk,book,notional,var\n" + "".join(
            "%s,%s,%d,%d\n" % (rnd.choice(WORDS), rnd.choice(CLIENTS), rnd.randint(1, 10**7),
                               rnd.randint(1, 10**5)) for _ in range(400))).encode()
        try:
            for kind in ("futok", "fdtok"):
                code, rpl = ua.xccos(d, '<cmd id="cmd:get%s" seqid="1"><data><ftdb channelUri="%s" '
                                        'fileUrl="https://files/%s"/></data></cmd>' % (
                                            kind, room, name))
                m = re.search(r'token token="([0-9a-f]+)" serveruri="([^"]+)"', rpl)
                if code != 200 or not m:
                    stats.err("get%s: %d" % (kind, code))
                    return
                url = m.group(2).replace("&amp;", "&") + "?token=" + m.group(1)
                if kind == "futok":
                    req = urllib.request.Request(url, data=data, method="PUT")
                    with urllib.request.urlopen(req, timeout=30) as resp:
                        if resp.status == 201:
                            stats.add("file_uploads")
                else:
                    with urllib.request.urlopen(url, timeout=30) as resp:
                        got = resp.read()
                    if hashlib.sha256(got).digest() == hashlib.sha256(data).digest():
                        stats.add("file_downloads")
                    else:
                        stats.err("downloaded file differs")
        except Exception as e:
            stats.err("file service: %r" % e)

    threads = [threading.Thread(target=run, args=(i, u), daemon=True) for i, u in enumerate(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(a.duration + 180)
    out = dict(stats.c)
    out["users"] = n
    out["seconds"] = round(time.time() - t0, 1)
    out["error_samples"] = stats.errors
    print(json.dumps(out, sort_keys=True))
    bad = out.get("sessions", 0) < n or out.get("signouts", 0) < out.get("sessions", 0) or \
        any(t.is_alive() for t in threads)
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("setup")
    s.add_argument("--cv", required=True, help='the chatvault command, e.g. "bin/chatvault -c F"')
    s.add_argument("--domain", required=True)
    s.add_argument("--users", type=int, default=300)
    s.add_argument("--rooms", type=int, default=36)
    s.add_argument("--password-file", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--seed", type=int, default=2026)
    t = sub.add_parser("traffic")
    t.add_argument("--server", required=True)
    t.add_argument("--domain", required=True)
    t.add_argument("--password-file", required=True)
    t.add_argument("--dir", required=True)
    t.add_argument("--duration", type=float, default=25, help="seconds of the compressed day")
    t.add_argument("--ims", type=int, default=4, help="mean IMs a user sends")
    t.add_argument("--posts", type=int, default=4, help="mean posts of a chatting user")
    t.add_argument("--chat-share", type=float, default=0.6,
                   help="share of users who open persistent chat")
    t.add_argument("--no-file", dest="file", action="store_false")
    t.add_argument("--seed", type=int, default=None)
    a = ap.parse_args()
    if a.cmd == "setup":
        if len(ROOMS) < a.rooms:
            sys.exit("demo_chat: at most %d rooms" % len(ROOMS))
        setup(a)
        return 0
    return traffic(a)


if __name__ == "__main__":
    sys.exit(main())
