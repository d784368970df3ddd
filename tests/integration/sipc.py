#!/usr/bin/env python3
"""sipc.py — a tiny SIP user agent for the chatd tests, where SIPp cannot
do what a test needs: check a reply's exact status line and headers, or stay
on the TCP connection it registered from and receive what chatd forwards
there (SIPp as a UAC drops requests with a Call-ID it did not start).

  sipc.py [options] register            REGISTER with digest; print the final
                                        status line and the headers asked for
  sipc.py [options] --replay register  ... then replay the authorised request
  sipc.py [options] --to U --text T message   MESSAGE from outside any registered
                                        flow, answering a 401 with digest; print
                                        the final status line
  sipc.py [options] listen              register, then wait for one MESSAGE on
                                        the same socket, answer 200, print it
Options: --server HOST:PORT --tcp --user U --password P --domain D
         --lport N --cparams ';x=y' --expires N --header NAME (repeatable)
         --wait SECONDS
Exit 0 when it got a final answer (listen: a MESSAGE), 1 otherwise.
"""
import argparse, hashlib, os, re, socket, sys, time

ap = argparse.ArgumentParser()
ap.add_argument("mode", choices=["register", "listen", "message"])
ap.add_argument("--to", default="")
ap.add_argument("--text", default="hello")
ap.add_argument("--server", required=True)
ap.add_argument("--tcp", action="store_true")
ap.add_argument("--user", required=True)
ap.add_argument("--password", required=True)
ap.add_argument("--domain", default="example.test")
ap.add_argument("--lport", type=int, default=0)
ap.add_argument("--cparams", default="")
ap.add_argument("--expires", type=int, default=600)
ap.add_argument("--header", action="append", default=[])
ap.add_argument("--wait", type=float, default=10)
ap.add_argument("--replay", action="store_true",
                help="register: after the answer, send the same authorised REGISTER again "
                     "(same nonce and nc, new branch and CSeq); print that answer too")
a = ap.parse_args()
host, port = a.server.rsplit(":", 1)
dst = (host, int(port))
tp = "TCP" if a.tcp else "UDP"

if a.tcp:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", a.lport))
    s.connect(dst)
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", a.lport))
lport = s.getsockname()[1]
buf = b""


def send(data):
    if a.tcp:
        s.sendall(data)
    else:
        s.sendto(data, dst)


def recv(timeout):
    """One SIP message: (start line, {lower name: [values]}, body)."""
    global buf
    deadline = time.time() + timeout
    while True:
        if a.tcp:
            i = buf.find(b"\r\n\r\n")
            if i >= 0:
                m = re.search(rb"(?im)^(?:content-length|l)\s*:\s*(\d+)", buf[:i])
                n = int(m.group(1)) if m else 0
                if len(buf) >= i + 4 + n:
                    raw, buf = buf[:i + 4 + n], buf[i + 4 + n:]
                    break
        left = deadline - time.time()
        if left <= 0:
            return None
        s.settimeout(left)
        try:
            data = s.recv(65536)
        except socket.timeout:
            return None
        if not a.tcp:
            raw = data
            break
        if not data:
            return None
        buf += data
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("utf-8", "replace").split("\r\n")
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs.setdefault(k.strip().lower(), []).append(v.strip())
    return lines[0], hdrs, body


def rnd():
    return os.urandom(6).hex()


aor = "sip:%s@%s" % (a.user, a.domain)
callid = rnd() + "@sipc"
ftag = rnd()


def register(cseq, auth=""):
    msg = ("REGISTER sip:%s SIP/2.0\r\nVia: SIP/2.0/%s 127.0.0.1:%d;branch=z9hG4bK%s\r\n"
           "From: <%s>;tag=%s\r\nTo: <%s>\r\nCall-ID: %s\r\nCSeq: %d REGISTER\r\n"
           "Contact: <sip:%s@127.0.0.1:%d>%s\r\n%sMax-Forwards: 70\r\nExpires: %d\r\n"
           "Content-Length: 0\r\n\r\n") % (a.domain, tp, lport, rnd(), aor, ftag, aor, callid,
                                           cseq, a.user, lport, a.cparams, auth, a.expires)
    send(msg.encode())
    while True:
        r = recv(5)
        if r is None or not r[0].startswith("SIP/2.0 1"):
            return r


def md5(x):
    return hashlib.md5(x.encode()).hexdigest()


def digest(ch, method, uri):
    f = dict(re.findall(r'(\w+)="?([^",]*)"?', ch))
    cn = rnd()
    ha1 = md5("%s:%s:%s" % (a.user, f["realm"], a.password))
    ha2 = md5("%s:%s" % (method, uri))
    resp = md5("%s:%s:00000001:%s:auth:%s" % (ha1, f["nonce"], cn, ha2))
    return ('Authorization: Digest username="%s", realm="%s", nonce="%s", uri="%s", '
            'response="%s", algorithm=MD5, qop=auth, nc=00000001, cnonce="%s"\r\n') % (
                a.user, f["realm"], f["nonce"], uri, resp, cn)


def message(cseq, auth=""):
    ruri = "sip:%s@%s" % (a.to, a.domain)
    body = a.text.encode()
    msg = ("MESSAGE %s SIP/2.0\r\nVia: SIP/2.0/%s 127.0.0.1:%d;branch=z9hG4bK%s\r\n"
           "From: <%s>;tag=%s\r\nTo: <%s>\r\nCall-ID: %s\r\nCSeq: %d MESSAGE\r\n%s"
           "Max-Forwards: 70\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n") % (
               ruri, tp, lport, rnd(), aor, ftag, ruri, callid, cseq, auth, len(body))
    send(msg.encode() + body)
    while True:
        r = recv(5)
        if r is None or not r[0].startswith("SIP/2.0 1"):
            return r


if a.mode == "message":
    r = message(1)
    if r and r[0].startswith("SIP/2.0 401"):
        r = message(2, digest(r[1]["www-authenticate"][0], "MESSAGE", "sip:%s@%s" % (a.to, a.domain)))
    print(r[0] if r else "no answer")
    sys.exit(0 if r else 1)


auth = ""
r = register(1)
if r and r[0].startswith("SIP/2.0 401"):
    auth = digest(r[1]["www-authenticate"][0], "REGISTER", "sip:" + a.domain)
    r = register(2, auth)
if r is None:
    print("no answer")
    sys.exit(1)
print(r[0])
for h in a.header:
    for v in r[1].get(h.lower(), []):
        print("%s: %s" % (h, v))
sys.stdout.flush()
if a.mode == "register":
    if a.replay:
        r = register(3, auth)
        print("replay: " + (r[0] if r else "no answer"))
        for v in (r[1].get("www-authenticate", []) if r else []):
            print("replay: WWW-Authenticate: " + v)
    sys.exit(0)
if not r[0].startswith("SIP/2.0 200"):
    sys.exit(1)
print("listening on %s 127.0.0.1:%d" % (tp, lport), flush=True)
deadline = time.time() + a.wait
while time.time() < deadline:
    m = recv(deadline - time.time())
    if m is None:
        break
    start, h, body = m
    if not start.startswith("MESSAGE "):
        continue
    resp = "SIP/2.0 200 OK\r\n"
    for k in ("via", "from", "to", "call-id", "cseq"):
        for v in h.get(k, []):
            resp += "%s: %s%s\r\n" % (k.title(), v, ";tag=" + rnd() if k == "to" else "")
    send((resp + "Content-Length: 0\r\n\r\n").encode())
    print("MESSAGE from %s: %s" % (h.get("from", ["?"])[0], body.decode("utf-8", "replace")))
    sys.exit(0)
print("no MESSAGE")
sys.exit(1)
