package classify

import (
	"bufio"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/classify/task"
	"github.com/stellwerk/stellwerk/internal/config"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/golden_results.txt")

// sharedData is the project's data sets beside the repository (see
// internal/cli/eval.go); the golden test reads a sample of them when they
// are there.
const sharedData = "../../../shared/data"

// goldenInput is one request of the golden corpus: a body classified as
// the router reads it.
type goldenInput struct {
	name string
	body []byte
}

// chatBody is a chat request of a system prompt and one user message.
func chatBody(system, text string) []byte {
	msgs := []map[string]string{}
	if system != "" {
		msgs = append(msgs, map[string]string{"role": "system", "content": system})
	}
	msgs = append(msgs, map[string]string{"role": "user", "content": text})
	b, _ := json.Marshal(map[string]any{"model": "auto", "messages": msgs})
	return b
}

// goldenInputs are every prompt of the repository's corpora (the task
// corpus the bench sends, the varied prompts, the injection benign set,
// the fuzz seeds) and a deterministic sample of the shared data sets:
// each as a user message, and every seventh also upper-cased, as a tool
// result and with the text split over an assistant turn, so the memo,
// the roles and the fold are read too.
func goldenInputs(t *testing.T) []goldenInput {
	var in []goldenInput
	add := func(name, system, text string) {
		in = append(in, goldenInput{name, chatBody(system, text)})
		if len(in)%7 == 0 {
			in = append(in, goldenInput{name + "/upper", chatBody(system, strings.ToUpper(text))})
			b, _ := json.Marshal(map[string]any{"model": "auto", "messages": []map[string]any{
				{"role": "user", "content": "Look this up."},
				{"role": "assistant", "content": nil, "tool_calls": []map[string]any{{"id": "c1", "type": "function",
					"function": map[string]any{"name": "fetch", "arguments": `{"q":"x"}`}}}},
				{"role": "tool", "tool_call_id": "c1", "content": text},
				{"role": "assistant", "content": text[:len(text)/2]},
				{"role": "user", "content": [](map[string]string){{"type": "text", "text": text[len(text)/2:]}}},
			}})
			in = append(in, goldenInput{name + "/turns", b})
		}
	}
	f, err := os.Open("task/testdata/prompts.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	exs, err := task.ReadExamples(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range exs {
		add(fmt.Sprintf("prompts/%d", i), e.System, e.Text)
	}
	f, err = os.Open("task/testdata/varied.txt")
	if err != nil {
		t.Fatal(err)
	}
	exs, err = task.ReadVaried(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range exs {
		add(fmt.Sprintf("varied/%d", i), "", e.Text)
	}
	for i, line := range readLines(t, "injection/testdata/benign.jsonl") {
		var d struct{ Text string }
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			t.Fatal(err)
		}
		add(fmt.Sprintf("benign/%d", i), "", d.Text)
	}
	for i, line := range readLines(t, "injection/testdata/instructions.txt") {
		if line != "" && !strings.HasPrefix(line, "#") {
			add(fmt.Sprintf("instructions/%d", i), "", line)
		}
	}
	for _, dir := range []string{"testdata/fuzz/FuzzRedact", "pii/testdata/fuzz/FuzzDetect", "secrets/testdata/fuzz/FuzzDetect",
		"injection/testdata/fuzz/FuzzScore", "task/testdata/fuzz/FuzzClassify"} {
		for _, s := range fuzzSeeds(t, dir) {
			add(dir+"/"+s.name, "", s.text)
		}
	}
	for _, s := range fuzzSeeds(t, "testdata/fuzz/FuzzClassify") {
		in = append(in, goldenInput{"FuzzClassify/" + s.name, []byte(s.text)})
	}
	// The shared data sets: every 20th sentence of presidio-research's, every
	// 25th prompt of the jailbreak set and of routerbench's.
	if b, err := os.ReadFile(filepath.Join(sharedData, "pii/presidio_generated_large.json")); err == nil {
		var samples []struct {
			FullText string `json:"full_text"`
		}
		if err := json.Unmarshal(b, &samples); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(samples); i += 20 {
			add(fmt.Sprintf("presidio/%d", i), "", samples[i].FullText)
		}
	} else {
		t.Logf("no shared data (%v): the golden file's shared-data lines are not compared", err)
	}
	for _, name := range []string{"injection/jailbreak_train_balanced.csv", "routerbench/mbpp_train.csv",
		"routerbench/arc_challenge_train.csv", "routerbench/winograde_train.csv"} {
		prompts := csvPrompts(t, filepath.Join(sharedData, name))
		for i := 0; i < len(prompts); i += 25 {
			add(fmt.Sprintf("%s/%d", name, i), "", prompts[i])
		}
	}
	return in
}

func readLines(t *testing.T, path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

type fuzzSeed struct{ name, text string }

// fuzzSeeds reads a fuzz corpus directory's files: each value of a
// `go test fuzz v1` file that is a string or []byte.
func fuzzSeeds(t *testing.T, dir string) []fuzzSeed {
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []fuzzSeed
	for _, e := range ents {
		sc := bufio.NewScanner(mustOpen(t, filepath.Join(dir, e.Name())))
		sc.Buffer(nil, 16<<20)
		for k := 0; sc.Scan(); k++ {
			line := sc.Text()
			var lit string
			switch {
			case strings.HasPrefix(line, "string("):
				lit = strings.TrimSuffix(strings.TrimPrefix(line, "string("), ")")
			case strings.HasPrefix(line, "[]byte("):
				lit = strings.TrimSuffix(strings.TrimPrefix(line, "[]byte("), ")")
			default:
				continue
			}
			s, err := strconv.Unquote(lit)
			if err != nil {
				t.Fatalf("%s/%s: %v", dir, e.Name(), err)
			}
			out = append(out, fuzzSeed{fmt.Sprintf("%s:%d", e.Name(), k), s})
		}
	}
	return out
}

func mustOpen(t *testing.T, path string) io.Reader {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.NewReader(string(b))
}

// csvPrompts is the prompt column of a shared CSV, nil when it is absent.
func csvPrompts(t *testing.T, path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	col := -1
	for k, h := range recs[0] {
		if strings.TrimPrefix(h, "\ufeff") == "prompt" {
			col = k
		}
	}
	if col < 0 {
		t.Fatalf("%s: no prompt column", path)
	}
	var out []string
	for _, r := range recs[1:] {
		out = append(out, r[col])
	}
	return out
}

// TestGoldenResults classifies every request of goldenInputs with a
// classifier that has term lists and compares each whole Result (task,
// complexity and its signals, language, every finding with its position,
// injection, terms, sensitivity, risk, tokens, scan) with
// testdata/golden_results.txt, a digest of its JSON per request written by
// -update. It pins the classifier's output while its speed is worked on.
func TestGoldenResults(t *testing.T) {
	cl, err := New(config.Classify{Sensitivity: config.DefaultSensitivity, Risk: config.DefaultRisk, Terms: []config.TermList{
		{Name: "projects", Terms: []string{"project falcon", "lighthouse", "customer", "天鹅计划", "café"}, Patterns: []string{`\bord-\d{4}\b`}},
		{Name: "code", Terms: []string{"func", "def", "select", "return"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	var names []string
	results := map[string][]byte{}
	for _, in := range goldenInputs(t) {
		if !gjson.ValidBytes(in.body) {
			continue
		}
		req := bodyRequest(gjson.ParseBytes(in.body))
		req.Workspace, req.Key = "w", "k" // texts sent again are the memo's
		r, err := json.Marshal(cl.Classify(req))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(r)
		names = append(names, in.name)
		got[in.name] = hex.EncodeToString(sum[:12])
		results[in.name] = r
	}
	const path = "testdata/golden_results.txt"
	if *updateGolden {
		var b strings.Builder
		b.WriteString("# TestGoldenResults: request name, then a digest of its classification's JSON. Regenerate with -update.\n")
		for _, n := range names {
			fmt.Fprintf(&b, "%s %s\n", n, got[n])
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want := map[string]string{}
	for _, line := range readLines(t, path) {
		if strings.HasPrefix(line, "#") {
			continue
		}
		k := strings.LastIndexByte(line, ' ')
		want[line[:k]] = line[k+1:]
	}
	bad, compared := 0, 0
	for _, n := range names {
		w, ok := want[n]
		if !ok {
			t.Errorf("%s: not in %s (run with -update)", n, path)
			continue
		}
		compared++
		if w != got[n] {
			if bad++; bad <= 10 {
				t.Errorf("%s: classification changed: %s", n, results[n])
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d classifications changed", bad, compared)
	}
	if _, err := os.Stat(sharedData); err == nil && compared != len(want) {
		t.Errorf("compared %d of %d golden requests", compared, len(want))
	}
	t.Logf("%d requests compared", compared)
}
