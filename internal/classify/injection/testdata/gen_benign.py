#!/usr/bin/env python3
"""Writes benign.jsonl: benign documents the injection model trains on.

Sources (licences beside this file):
  - sections of the Python 3.11 language and library reference, from the
    interpreter's own pydoc_data/topics.py (PSF License, LICENSE.python);
  - the texts of the Apache License 2.0 and of CC0 1.0, from Debian's
    /usr/share/common-licenses;
  - pieces of the rest of the Python 3.11 documentation (tutorial, HOWTOs,
    FAQ, library reference, ...; PSF License), from the reStructuredText
    sources of Debian's python3.11-doc package: every piece in which one of
    the hand-written cues of ../cues.go fires (two ways, both versions, no
    filters, debug mode, ...: the attack vocabulary in benign use), and as
    many pieces again chosen at random;
  - pieces of the PostgreSQL 15 documentation (PostgreSQL Licence,
    LICENSE.postgresql), from the HTML of Debian's postgresql-doc-15
    package, chosen the same way: a database manual's grants, policies,
    rules, filters and rejected connections are a gateway's vocabulary too.

Run from the repository root:  python3 internal/classify/injection/testdata/gen_benign.py
(with Python 3.11, python3.11-doc 3.11.2-6+deb12u9 and postgresql-doc-15
15.20-0+deb12u1, so that the texts are the same).
"""
import ast, html.parser, json, os, random, re, sysconfig

out = []

def pieces(text, rng, sizes):
    paras = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    i = 0
    while i < len(paras):
        want, buf, n = rng.choice(sizes), [], 0
        while i < len(paras) and n < want:
            buf.append(paras[i]); n += len(paras[i]) + 2; i += 1
        yield "\n\n".join(buf)

topics_py = os.path.join(sysconfig.get_paths()["stdlib"], "pydoc_data", "topics.py")
for node in ast.parse(open(topics_py).read()).body:
    if isinstance(node, ast.Assign) and node.targets[0].id == "topics":
        topics = ast.literal_eval(node.value)
rng = random.Random(7)
chunks = [(k, t) for k in sorted(topics) for t in pieces(topics[k], rng, [200, 400, 800, 1200, 1600, 2400, 3200])]
rng.shuffle(chunks)
total = 0
for k, t in chunks:
    if len(t) < 120:
        continue
    out.append({"source": "python-reference:" + k, "text": t})
    total += len(t)
    if total > 160000:
        break

rng = random.Random(11)
for name in ["Apache-2.0", "CC0-1.0"]:
    for t in pieces(open("/usr/share/common-licenses/" + name).read(), rng, [300, 600, 1000, 1500, 2200]):
        if len(t) >= 120:
            out.append({"source": "license:" + name, "text": t})

# The cue matcher of ../cues.go, read from that file: classes of words, and
# cues as classes in order with at most gap other words between them.
here = os.path.dirname(os.path.abspath(__file__))
cues_go = open(os.path.join(here, "..", "cues.go")).read()
classes = {m.group(1): set(m.group(2).encode().decode("unicode_escape").split())
           for m in re.finditer(r'^\s*(c\w+):\s*"([^"]*)",', cues_go, re.M)}
cues = [([c.strip() for c in m.group(2).split(",")], int(m.group(3)))
        for m in re.finditer(r'\{"(\w+)", \[\]int\{([^}]*)\}, (\d+), ', cues_go)]

def words(text):
    text = re.sub(r"(?<=[A-Za-z0-9])['\u2019](?=[A-Za-z0-9])", "", text)
    return [w.lower() for w in re.findall(r"[A-Za-z0-9]+|[\u0080-\U0010ffff]+", text)]

def fires(text):
    ws = words(text)
    for slots, gap in cues:
        reach = [-10**9] * len(slots)
        for t, w in enumerate(ws):
            for s in range(len(slots) - 1, -1, -1):
                if w not in classes[slots[s]] or (s > 0 and (reach[s-1] >= t or t - reach[s-1] - 1 > gap)):
                    continue
                if s == len(slots) - 1:
                    return True
                reach[s] = t
    return False

mined = 0  # pieces chosen because a cue fires in them
sources = "/usr/share/doc/python3.11/html/_sources"
docs = []
for root, dirs, files in os.walk(sources):
    dirs.sort()
    rel = os.path.relpath(root, sources)
    if rel.split(os.sep)[0] == "reference":
        continue  # already in, through topics.py
    for name in sorted(files):
        if name.endswith(".rst.txt"):
            docs.append((os.path.join(rel, name[:-len(".rst.txt")]), open(os.path.join(root, name)).read()))
rng = random.Random(13)
hits, rest = [], []
for name, text in docs:
    for t in pieces(text, rng, [600, 1200, 2000, 2800]):
        if len(t) >= 120:
            (hits if fires(t) else rest).append({"source": "python-docs:" + name, "text": t})
rng.shuffle(rest)
out += hits + rest[:len(hits)]
mined += len(hits)

class Text(html.parser.HTMLParser):
    """The text of an HTML page, a blank line between blocks."""
    blocks = {"p", "div", "pre", "li", "h1", "h2", "h3", "h4", "tr", "dt", "dd", "table"}
    def __init__(self):
        super().__init__()
        self.parts, self.skip = [], 0
    def handle_starttag(self, tag, attrs):
        self.skip += tag in ("script", "style")
        if tag in self.blocks:
            self.parts.append("\n\n")
    def handle_endtag(self, tag):
        self.skip -= tag in ("script", "style")
    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)

pg = "/usr/share/doc/postgresql-doc-15/html"
rng = random.Random(17)
hits, rest = [], []
for name in sorted(os.listdir(pg)):
    if not name.endswith(".html"):
        continue
    p = Text()
    p.feed(open(os.path.join(pg, name), errors="replace").read())
    text = re.sub(r"[ \t]+\n", "\n", "".join(p.parts))
    for t in pieces(text, rng, [600, 1200, 2000, 2800]):
        if len(t) >= 120:
            (hits if fires(t) else rest).append({"source": "postgresql-docs:" + name[:-len(".html")], "text": t})
rng.shuffle(rest)
out += hits + rest[:len(hits)]
mined += len(hits)

with open(os.path.join(os.path.dirname(__file__), "benign.jsonl"), "w") as f:
    for o in out:
        f.write(json.dumps(o, ensure_ascii=False) + "\n")
print(len(out), "documents,", mined, "of them chosen because a cue fires in them")
