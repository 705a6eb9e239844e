package flow

import (
	"strings"
	"testing"
)

// Every load error names the route, the node and the position.
func TestLoadErrors(t *testing.T) {
	const head = "route: r\nnodes:\n"
	tail := "  - {id: a, model: gpt-4o}\n  - {id: b, model: gpt-4o-mini}\n"
	tests := map[string]struct {
		doc  string
		want []string // substrings of the one error's text, in order
	}{
		"unknown top-level field": {"route: r\nnods: []\nnodes:\n" + tail,
			[]string{"t.yaml:2:1: route r: unknown field \"nods\""}},
		"unknown node field": {head + "  - id: c\n    model: gpt-4o\n    weight: 3\n",
			[]string{"t.yaml:5:5: route r, node c: unknown field \"weight\""}},
		"undeclared variable": {head + "  - id: c\n    if: metdata.plan == \"paid\"\n    then: a\n    else: b\n" + tail,
			[]string{"t.yaml:4:9: route r, node c: if: undeclared reference to 'metdata'", "the variables are: request, metadata"}},
		"unknown request field": {head + "  - id: c\n    if: request.temperature > 1\n    then: a\n    else: b\n" + tail,
			[]string{"t.yaml:4:9:", "node c: if: unknown field of request (it has: model, max_tokens"}},
		"type error, quoted": {head + "  - id: c\n    if: 'request.max_tokens == \"many\"'\n    then: a\n    else: b\n" + tail,
			[]string{"t.yaml:4:29: route r, node c: if: found no matching overload for '_==_' applied to '(int, string)'"}},
		"type error, block scalar": {head + "  - id: c\n    if: |\n      request.stream &&\n        request.messages + \"x\" > 1\n    then: a\n    else: b\n" + tail,
			[]string{"t.yaml:6:26: route r, node c: if: found no matching overload for '_+_'"}},
		"not a bool": {head + "  - {id: c, if: request.max_tokens, then: a, else: b}\n" + tail,
			[]string{"node c: if: a condition must be a bool, this one is a int"}},
		"unknown budget": {head + "  - {id: c, if: 'budgets[\"nope\"].exceeded', then: a, else: b}\n" + tail,
			[]string{"t.yaml:3:", "node c: if: unknown budget \"nope\" (configured: eng-day, support-month)"}},
		"header not allowed": {head + "  - {id: c, if: 'headers[\"authorization\"] != \"\"', then: a, else: b}\n" + tail,
			[]string{"node c: if: header \"authorization\" is not passed to routes (allowed: user-agent, x-client-app, x-request-id)"}},
		"too costly": {head + "  - {id: c, if: 'metadata.all(k, metadata.all(j, metadata.all(l, metadata.all(m, k + j + l + m != \"\"))))', then: a, else: b}\n" + tail,
			[]string{"node c: if: the condition may cost up to", "more than the limit of 10000"}},
		"unknown model": {head + "  - id: c\n    model: gpt-5-turbo\n",
			[]string{"t.yaml:4:12: route r, node c: model: unknown model \"gpt-5-turbo\""}},
		"pinned model with auto settings": {head + "  - id: c\n    model: gpt-4o\n    objective: cost\n",
			[]string{"t.yaml:5:16: route r, node c: objective: only model: auto takes objective"}},
		"bad objective": {head + "  - {id: c, model: auto, objective: cheap}\n",
			[]string{"node c: objective: \"cheap\" is not one of cost, latency, accuracy, balanced"}},
		"unknown provider in allow": {head + "  - id: c\n    model: auto\n    allow: [gpt-4o, provider:nope]\n",
			[]string{"t.yaml:5:21: route r, node c: allow[1]: \"provider:nope\" is neither"}},
		"missing next": {head + "  - id: c\n    rate_limit: {requests_per_minute: 5}\n    fallback: a\n" + tail,
			[]string{"node c: next: required: a node id"}},
		"dangling reference": {head + "  - {id: c, if: 'true', then: a, else: zz}\n" + tail,
			[]string{"t.yaml:3:40: route r, node c: else: no node \"zz\""}},
		"cycle": {head + "  - {id: c, if: 'true', then: d, else: a}\n  - {id: d, if: 'false', then: c, else: a}\n  - {id: a, model: gpt-4o}\n",
			[]string{"node c: the flow loops: c → d → c"}},
		"unreachable": {head + tail,
			[]string{"t.yaml:4:5: route r, node b: no path from the start (a) reaches this node"}},
		"two kinds": {head + "  - {id: c, model: gpt-4o, end: {message: no}}\n",
			[]string{"node c: a node is one kind, this one has model and end"}},
		"no kind": {head + "  - {id: c}\n", []string{"node c: a node needs one of: if, split, model"}},
		"unknown workspace": {"route: r\nworkspaces: [acme, nope]\nnodes:\n  - {id: a, model: gpt-4o}\n",
			[]string{"t.yaml:2:20: route r: workspaces: no workspace \"nope\" in the config"}},
		"duplicate id": {head + "  - {id: a, model: gpt-4o}\n  - {id: a, model: gpt-4o-mini}\n",
			[]string{"t.yaml:4:10: route r, node a: id: node id \"a\" is also nodes[0]"}},
		"duplicate key": {head + "  - id: a\n    model: gpt-4o\n    model: gpt-4o-mini\n",
			[]string{"route r", "model: given twice"}},
		"split weights": {head + "  - id: s\n    split:\n      arms:\n        - {name: x, weight: 0, next: a}\n        - {name: y, weight: 0, next: a}\n" + tail[:26],
			[]string{"node s: split.arms: at least one arm needs a positive weight"}},
		"split one arm": {head + "  - id: s\n    split:\n      arms:\n        - {name: x, weight: 1, next: a}\n" + tail[:26],
			[]string{"node s: split.arms: a split needs at least two arms"}},
		"weight type": {head + "  - id: s\n    split:\n      arms:\n        - {name: x, weight: lots, next: a}\n        - {name: y, weight: 1, next: a}\n" + tail[:26],
			[]string{"t.yaml:6:29: route r, node s: split.arms[0].weight: must be a number"}},
		"bad sticky": {head + "  - id: s\n    split:\n      sticky: session\n      arms:\n        - {name: x, weight: 1, next: a}\n        - {name: y, weight: 1, next: a}\n" + tail[:26],
			[]string{"t.yaml:5:15: route r, node s: split.sticky: \"session\" is not none, user, request.user, key or metadata.<field>"}},
		"on_unavailable value": {head + "  - {id: a, model: gpt-4o, on_unavailable: wait}\n",
			[]string{"node a: on_unavailable: \"wait\" is not fallback or refuse"}},
		"on_unavailable on an end": {head + "  - {id: e, end: {message: no}, on_unavailable: refuse}\n",
			[]string{"node e: on_unavailable: only a model or chain node has on_unavailable"}},
		"rate limit without limit": {head + "  - {id: l, rate_limit: {per: user}, next: a, fallback: b}\n" + tail,
			[]string{"node l: rate_limit: set requests_per_minute or requests_per_day"}},
		"rate limit per": {head + "  - {id: l, rate_limit: {requests_per_minute: 1, per: org}, next: a, fallback: b}\n" + tail,
			[]string{"node l: rate_limit.per: \"org\" is not key, user, team, workspace or route"}},
		"budget limit unknown": {head + "  - {id: l, budget_limit: {budget: marketing}, next: a, fallback: b}\n" + tail,
			[]string{"node l: budget_limit.budget: unknown budget \"marketing\""}},
		"budget share": {head + "  - {id: l, budget_limit: {budget: eng-day, at: 1.5}, next: a, fallback: b}\n" + tail,
			[]string{"node l: budget_limit.at: must be a share above 0 and at most 1"}},
		"chain of a non-model": {head + "  - {id: c, chain: [a, e]}\n  - {id: a, model: gpt-4o}\n  - {id: e, end: {message: no}}\n",
			[]string{"t.yaml:3:24: route r, node c: chain[1]: \"e\" is a end node; a chain lists model nodes"}},
		"end status": {head + "  - {id: e, end: {status: 200, message: fine}}\n",
			[]string{"node e: end.status: 200 is not one of"}},
		"end message":     {head + "  - {id: e, end: {status: 429}}\n", []string{"node e: end.message: required"}},
		"next on a model": {head + "  - {id: a, model: gpt-4o, next: a}\n", []string{"node a: next: only a rate_limit or budget_limit node has next"}},
		"bad route name": {"route: Support Bot\nnodes:\n  - {id: a, model: gpt-4o}\n",
			[]string{"t.yaml:1:8: route Support Bot: route: \"Support Bot\" is not a route name"}},
		"no route":       {"nodes:\n  - {id: a, model: gpt-4o}\n", []string{"route: required"}},
		"bad start":      {"route: r\nstart: zz\nnodes:\n  - {id: a, model: gpt-4o}\n", []string{"t.yaml:2:8: route r: start: no node \"zz\""}},
		"two documents":  {"route: r\nnodes:\n  - {id: a, model: gpt-4o}\n---\nroute: s\n", []string{"a route file holds one document"}},
		"not YAML":       {"route: [\n", []string{"t.yaml", "not valid YAML"}},
		"empty":          {"", []string{"the document is empty"}},
		"not a mapping":  {"- a\n", []string{"a route document is a mapping"}},
		"nodes not list": {"route: r\nnodes: {a: 1}\n", []string{"t.yaml:2:8: route r: nodes: must be a list of nodes"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Load("t.yaml", []byte(tc.doc), testEnv)
			if err == nil {
				t.Fatal("loaded")
			}
			errs := Errors(err)
			msg := errs[0].Error()
			rest := msg
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("error %q\nlacks %q (all: %v)", msg, w, err)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}

// Several problems are all reported at once, an unreachable node and a
// cycle among them (docs/routes.md's example); a dangling edge leaves
// reachability unknown, so it is reported alone rather than with a "no
// path reaches" for the node it was meant to name.
func TestAllErrorsAtOnce(t *testing.T) {
	for name, tc := range map[string]struct {
		doc  string
		want []string
	}{
		"values": {"route: r\nnodes:\n  - {id: c, if: 'nope', then: a, else: b}\n  - {id: a, model: nope}\n  - {id: b, model: auto, objective: fast}\n",
			[]string{"node c: if:", "node a: model: unknown model", "node b: objective:"}},
		"values and the graph": {"route: r\nnodes:\n  - {id: c, if: 'metdata.plan == \"x\"', then: a, else: d}\n  - {id: a, model: gpt-5-turbo}\n" +
			"  - {id: d, if: 'true', then: e, else: a}\n  - {id: e, if: 'true', then: d, else: a}\n",
			[]string{"node c: if: undeclared reference to 'metdata'", "node a: model: unknown model \"gpt-5-turbo\"",
				"node d: the flow loops: d → e → d"}},
		"unreachable beside a value": {"route: r\nnodes:\n  - {id: a, model: gpt-5-turbo}\n  - {id: b, model: gpt-4o}\n",
			[]string{"node a: model: unknown model", "node b: no path from the start (a) reaches this node"}},
		"dangling edge": {"route: r\nnodes:\n  - {id: c, if: 'true', then: stong, else: a}\n  - {id: a, model: gpt-4o}\n  - {id: strong, model: gpt-4o}\n",
			[]string{"node c: then: no node \"stong\""}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Load("t.yaml", []byte(tc.doc), testEnv)
			errs := Errors(err)
			if len(errs) != len(tc.want) {
				t.Fatalf("%d errors, want %d:\n%v", len(errs), len(tc.want), err)
			}
			for i, w := range tc.want {
				if !strings.Contains(errs[i].Error(), w) {
					t.Errorf("error %d %q lacks %q", i, errs[i], w)
				}
			}
		})
	}
}

// A draft checked without a config (nil Env) checks the document alone.
func TestNilEnv(t *testing.T) {
	if _, err := Load("t", []byte("route: r\nnodes:\n  - {id: c, if: 'budgets[\"any\"].exceeded', then: a, else: a}\n  - {id: a, model: some-model}\n"), nil); err != nil {
		t.Fatal(err)
	}
}
