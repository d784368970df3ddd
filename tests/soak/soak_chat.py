#!/usr/bin/env python3
"""soak_chat.py — the IM load of the soak (tests/soak/soak.sh), stdlib only.

  soak_chat.py --server HOST:PORT --domain D --password-file F --pairs N
               --rate R --stop FILE --sent FILE --acks FILE

N pairs of users sendK -> recvK (added beforehand by soak.sh, all with the
password in F).  Each sender sends R/N MESSAGEs a second, each with a text of
its own, "soak-im K n" (n counts up per sender and is never reused): the text
is appended to --sent before the MESSAGE leaves, and to --acks when chatd
answered 200 (its im.message event is durable, docs/CHAT.md).  Anything else
— a refusal (480 after a restart, 401 from a chatd that no longer knows the
flow, 503), no answer, or the connection refused while chatd is dead — is
counted, and the sender signs in again (with backoff) and goes on with new
texts: a text is never sent in a second transaction, so the soak can check
that every acknowledged text is archived exactly once and no text twice.
(Within one transaction a MESSAGE is retransmitted like any UDP client does;
chatd's transaction layer absorbs those.  A retransmission that reaches a
restarted chatd comes from a flow it does not know and gets 401, so it cannot
become a second event.)

Recipients sign in, answer the forwarded MESSAGEs 200 and sign in again every
few seconds or when their sender got 480 (a restarted chatd has no
registrations).  The clients are tools/demo_chat.py's UA, with their UDP
socket connected to chatd so that a dead chatd is an immediate "connection
refused" rather than a 32 s timeout.

Runs until FILE (--stop) exists, then prints one JSON object.
"""
import argparse
import importlib.util
import json
import os
import sys
import threading
import time

_here = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location(
    "demo_chat", os.path.join(_here, "..", "..", "tools", "demo_chat.py"))
demo_chat = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(demo_chat)
UA, NoAnswer, Stats, rnd_hex = demo_chat.UA, demo_chat.NoAnswer, demo_chat.Stats, demo_chat.rnd_hex


class SoakUA(UA):
    def __init__(self, *a):
        super().__init__(*a)
        # connected: ICMP port unreachable (chatd dead) becomes ECONNREFUSED
        self.s.connect(self.dst)

    def im(self, to, text):
        """One MESSAGE transaction, never repeated with the same text."""
        ruri = "sip:%s" % to.split(":", 1)[1]
        callid = rnd_hex() + "@soak"
        body = text.encode()
        msg = ("MESSAGE %s SIP/2.0\r\n%sFrom: <%s>;tag=%s\r\nTo: <%s>\r\nCall-ID: %s\r\n"
               "CSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nContent-Type: text/plain; charset=UTF-8\r\n"
               "Content-Length: %d\r\n\r\n") % (ruri, self.via(), self.aor, rnd_hex(), ruri,
                                              callid, len(body))
        return self.transact(msg.encode() + body, callid, "1 MESSAGE")[0]


class Out:
    """Append-only line files shared by the threads, flushed per line."""

    def __init__(self, path):
        self.f = open(path, "a", encoding="utf-8")
        self.lock = threading.Lock()

    def put(self, line):
        with self.lock:
            self.f.write(line + "\n")
            self.f.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", required=True)
    ap.add_argument("--domain", required=True)
    ap.add_argument("--password-file", required=True)
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--rate", type=float, default=20, help="MESSAGEs per second, all senders")
    ap.add_argument("--refresh", type=float, default=3.0,
                    help="recipients sign in again this often (s)")
    ap.add_argument("--stop", required=True)
    ap.add_argument("--sent", required=True)
    ap.add_argument("--acks", required=True)
    a = ap.parse_args()
    host, port = a.server.rsplit(":", 1)
    server = (host, int(port))
    password = open(a.password_file, encoding="utf-8").readline().rstrip("\r\n")
    stats = Stats()
    sent, acks = Out(a.sent), Out(a.acks)
    period = a.pairs / a.rate
    t0 = time.time()

    def stopped():
        return os.path.exists(a.stop)

    def nap(s):
        end = time.time() + s
        while not stopped() and time.time() < end:
            time.sleep(min(0.1, max(0.0, end - time.time())))

    def sign_in(ua, who):
        """True once chatd answered the REGISTER 200."""
        try:
            st = ua.register()
        except NoAnswer:
            stats.add("%s_register_timeouts" % who)
            return False
        except OSError:
            stats.add("%s_register_refused" % who)
            return False
        if st.startswith("SIP/2.0 200"):
            stats.add("%s_registrations" % who)
            return True
        stats.add("%s_register_%s" % (who, st.split()[1] if len(st.split()) > 1 else "bad"))
        return False

    def recipient(k, need):
        ua = SoakUA("recv%d" % k, password, a.domain, server, stats)
        ok, last, backoff = False, 0.0, 0.2
        while not stopped():
            if not ok or need.is_set() or time.time() - last > a.refresh:
                need.clear()
                ok, last = sign_in(ua, "recipient"), time.time()
                if not ok:
                    nap(backoff)
                    backoff = min(backoff * 2, 2.0)
                    continue
                backoff = 0.2
            try:
                ua.pump(0.2)
            except OSError:
                ok = False
        ua.s.close()

    def sender(k, need):
        ua = SoakUA("send%d" % k, password, a.domain, server, stats)
        to = "sip:recv%d@%s" % (k, a.domain)
        ok, backoff, n = False, 0.2, 0
        nxt = time.time() + period * k / a.pairs
        while not stopped():
            if not ok:
                ok = sign_in(ua, "sender")
                if not ok:
                    nap(backoff)
                    backoff = min(backoff * 2, 2.0)
                    continue
                backoff = 0.2
            nap(nxt - time.time())
            if stopped():
                break
            nxt += period
            if nxt < time.time() - 1:          # after an outage: no burst to catch up
                nxt = time.time()
            n += 1
            text = "soak-im %d %d" % (k, n)
            sent.put(text)
            stats.add("sent")
            try:
                st = ua.im(to, text)
            except NoAnswer:
                stats.add("timeouts")
                ok = False
                continue
            except OSError:                    # ECONNREFUSED: chatd is dead
                stats.add("refused")
                ok = False
                continue
            code = st.split()[1] if len(st.split()) > 1 else "bad"
            if code in ("200", "202"):
                acks.put(text)
                stats.add("acked")
                continue
            stats.add("answered_%s" % code)
            ok = False
            if code == "480":
                need.set()

    threads = []
    for k in range(1, a.pairs + 1):
        need = threading.Event()
        threads.append(threading.Thread(target=recipient, args=(k, need), daemon=True))
        threads.append(threading.Thread(target=sender, args=(k, need), daemon=True))
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(1)
    out = dict(stats.c)
    out["pairs"] = a.pairs
    out["rate"] = a.rate
    out["seconds"] = round(time.time() - t0, 1)
    out["im_received"] = out.get("im_received", 0)
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
