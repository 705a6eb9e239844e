"""Interleaved sequential requests through Envoy alone (:10010) and Envoy +
stellwerk (:10000); prints p50/p90/p99 of each and the difference. A rough
smoke figure, not the benchmark (that is make bench)."""
import http.client, json, time, statistics, sys
body = json.dumps({"model": "mock-gpt", "messages": [{"role": "user", "content": "Explain mutexes. " * 20}]})
def conn(port): return http.client.HTTPConnection("127.0.0.1", port)
paths = {"baseline (Envoy only)": (10010, "gpt-mock-1", "Bearer sk-mock-us-demo"), "stellwerk (Envoy+ext_proc)": (10000, "mock-gpt", "Bearer client")}
cs = {k: conn(p) for k, (p, _, _) in paths.items()}
res = {k: [] for k in paths}
N = int(sys.argv[1])
for i in range(N + 200):
    for k, (port, model, auth) in paths.items():
        b = body.replace("mock-gpt", model)
        t = time.perf_counter()
        cs[k].request("POST", "/v1/chat/completions", b, {"content-type": "application/json", "authorization": auth})
        r = cs[k].getresponse(); r.read()
        assert r.status == 200, (k, r.status)
        if i >= 200: res[k].append((time.perf_counter() - t) * 1e3)
q = lambda xs, p: sorted(xs)[int(p * (len(xs) - 1))]
for k, xs in res.items():
    print(f"{k:28s} n={len(xs)} p50={q(xs,.5):.3f}ms p90={q(xs,.9):.3f}ms p99={q(xs,.99):.3f}ms")
b, s = res["baseline (Envoy only)"], res["stellwerk (Envoy+ext_proc)"]
print(f"added: p50 {q(s,.5)-q(b,.5):.3f} ms, p99 {q(s,.99)-q(b,.99):.3f} ms; ratio p50 {q(s,.5)/q(b,.5):.2f}x")
