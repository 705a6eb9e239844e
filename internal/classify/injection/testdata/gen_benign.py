#!/usr/bin/env python3
"""Writes benign.jsonl: benign documents the injection model trains on.

Sources (licences beside this file):
  - sections of the Python 3.11 language and library reference, from the
    interpreter's own pydoc_data/topics.py (PSF License, LICENSE.python);
  - the texts of the Apache License 2.0 and of CC0 1.0, from Debian's
    /usr/share/common-licenses.

Run from the repository root:  python3 internal/classify/injection/testdata/gen_benign.py
(with Python 3.11, so that the reference's text is the same).
"""
import ast, json, os, random, re, sysconfig

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

with open(os.path.join(os.path.dirname(__file__), "benign.jsonl"), "w") as f:
    for o in out:
        f.write(json.dumps(o, ensure_ascii=False) + "\n")
print(len(out), "documents")
