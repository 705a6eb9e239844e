#!/usr/bin/env python3
"""Assembles ../prompts.jsonl, the labelled set for internal/classify/task.

Run from this directory: python3 assemble.py
Inputs: /work/shared/data (RouterBench CSVs, llm-warden jailbreak CSV) and authored_*.txt.
Output is deterministic: samples are chosen by FNV-1a hash of the sample id / row index.
"""
import ast, csv, json, os, sys

DATA = os.environ.get("STELLWERK_DATA", "/work/shared/data")
csv.field_size_limit(1 << 30)


def fnv32(s):
    h = 0x811C9DC5
    for b in s.encode("utf-8"):
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def routerbench(name):
    rows = list(csv.DictReader(open(os.path.join(DATA, "routerbench", name), encoding="utf-8")))
    out, seen = [], set()
    for r in sorted(rows, key=lambda r: fnv32(r["sample_id"])):
        p = ast.literal_eval(r["prompt"])[0]
        if p in seen:
            continue
        seen.add(p)
        out.append((r["sample_id"], p))
    return out


def last_question(prompt):
    """The final, unanswered question of a few-shot prompt, without the answer-format line."""
    block = prompt.rstrip().split("\n\n")[-1]
    lines = [l for l in block.split("\n") if not l.startswith("Print only") and l.strip() != "Answer:"]
    return "\n".join(lines).strip()


# Hand-reviewed llm-warden benign rows (index among type=benign rows, in file order).
# Each was read; ambiguous ones (passage QA, persona prompts that are really stories,
# mixed tasks) were left out. Role-play persona prompts are labelled chat.
BENIGN = {
    "reasoning": [7, 43, 87, 109, 117, 118, 193, 198, 202, 247, 270, 307, 315, 321, 495, 505],
    "math": [71, 121, 189, 290, 300, 398, 426, 464, 479, 480],
    "translation": [29, 39, 47, 48, 184, 226, 234, 236, 287, 304, 345, 403],
    "classification": [12, 14, 49, 53, 65, 69, 73, 171, 172, 220, 299, 386, 397, 419, 425, 437, 454, 503],
    "summarization": [55, 92, 170, 301, 327, 388, 415, 476, 485, 494],
    "extraction": [9, 235, 491],
    "creative_writing": [8, 18, 45, 95, 141, 308, 333, 446, 478, 490, 501, 513],
    "chat": [0, 11, 16, 24, 41, 44, 58, 67, 72, 84, 107, 125, 136, 143, 147, 162, 182, 194, 205, 213, 215, 245, 254, 262],
}


def authored():
    out = []
    for fn in sorted(f for f in os.listdir(".") if f.startswith("authored_") and f.endswith(".txt")):
        task, buf = None, []
        for line in open(fn, encoding="utf-8").read().split("\n") + ["@end"]:
            if line.startswith("@"):
                if task:
                    out.append((task, "\n".join(buf).strip()))
                task, buf = line[1:].strip(), []
            elif task:
                buf.append(line)
    return [(t, x) for t, x in out if t != "end"]


def main():
    recs = []
    add = lambda text, task, source: recs.append({"text": text, "system": "", "task": task, "source": source})

    mbpp = routerbench("mbpp_train.csv")
    for _, p in mbpp[:65]:
        add(p, "code", "routerbench/mbpp")
    for name, task, src in (("arc_challenge_train.csv", "knowledge_qa", "routerbench/arc_challenge"),
                            ("winograde_train.csv", "reasoning", "routerbench/winogrande")):
        rows = routerbench(name)
        for _, p in rows[:55]:
            add(p, task, src)
        for _, p in rows[55:67]:  # zero-shot form: only the final question
            add(last_question(p), task, src + "/last_question")

    benign = [r["prompt"] for r in csv.DictReader(open(os.path.join(DATA, "injection", "jailbreak_train_balanced.csv"), encoding="utf-8")) if r["type"] == "benign"]
    for task, idx in BENIGN.items():
        for i in idx:
            add(benign[i].strip(), task, "llm-warden/benign")

    for task, text in authored():
        add(text, task, "authored")

    tasks = {"code", "math", "reasoning", "extraction", "summarization", "translation",
             "creative_writing", "knowledge_qa", "classification", "chat"}
    seen = set()
    with open("../prompts.jsonl", "w", encoding="utf-8") as f:
        for r in recs:
            assert r["task"] in tasks, r
            if r["text"] in seen or not r["text"]:
                continue
            seen.add(r["text"])
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(len(seen), "prompts written", file=sys.stderr)


if __name__ == "__main__":
    main()
