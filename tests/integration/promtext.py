"""promtext.py — a strict parser of the Prometheus text exposition format
0.0.4 for the metrics tests (t_metrics, t_metrics_workers, t_metrics_chatd):
every sample after its family's TYPE, one TYPE per family, labels quoted
and escaped as the format says.  promtool, when installed, checks too.

  import promtext; m = promtext.Scrape(path)
  m.get(name, **labels)     the one sample's value (assert exactly one)
  m.has(name, **labels)     whether such a sample exists (labels a subset)
"""
import re

NAME = r'[a-zA-Z_:][a-zA-Z0-9_:]*'
SAMPLE = re.compile(r'^(%s)(?:\{(.*)\})? (\S+)$' % NAME)
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')


class Scrape:
    def __init__(self, path):
        self.types, self.samples = {}, []
        text = open(path, encoding="utf-8").read()
        assert text.endswith("\n"), "%s: no final newline" % path
        for n, line in enumerate(text.split("\n")[:-1], 1):
            if line.startswith("# HELP "):
                continue
            if line.startswith("# TYPE "):
                _, _, name, typ = line.split(" ")
                assert name not in self.types, "line %d: second TYPE for %s" % (n, name)
                assert typ in ("counter", "gauge", "histogram"), line
                self.types[name] = typ
                continue
            m = SAMPLE.match(line)
            assert m, "line %d does not parse: %r" % (n, line)
            name, lbl, val = m.groups()
            labels, pos = {}, 0
            while lbl and pos < len(lbl):
                lm = LABEL.match(lbl, pos)
                assert lm, "line %d: bad labels %r" % (n, lbl)
                labels[lm.group(1)] = lm.group(2)
                pos = lm.end()
                if pos < len(lbl):
                    assert lbl[pos] == ",", lbl
                    pos += 1
            fam = re.sub(r'_(bucket|sum|count)$', '', name) if name not in self.types else name
            assert fam in self.types, "line %d: %s before its TYPE" % (n, name)
            self.samples.append((name, labels, float(val)))

    def get(self, name, **labels):
        v = [s[2] for s in self.samples if s[0] == name and s[1] == labels]
        assert len(v) == 1, "%s%r: %d samples" % (name, labels, len(v))
        return v[0]

    def has(self, name, **labels):
        return any(s[0] == name and all(s[1].get(k) == w for k, w in labels.items())
                   for s in self.samples)
