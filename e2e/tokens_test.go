package e2e

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/tiktoken-go/tokenizer"

	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/harness"
)

// TestContextWindowInOtherScripts: the context-window check reads the
// prompt's tokens as o200k_base counts them in any script (the non-English
// probe). A Hindi prompt that fits a 1,000-token model with max_tokens 500
// is served (its vowel signs were charged 1.3 tokens each: "needs about
// 1184", refused); an Amharic one that does not fit is refused 400
// context_length_exceeded, with an estimate near the real count, instead of
// being sent to a model that rejects it (Ethiopic was charged like Latin, a
// quarter of its tokens).
func TestContextWindowInOtherScripts(t *testing.T) {
	t.Parallel()
	s := harness.Start(t, harness.Options{
		Providers: []harness.ProviderSpec{{Name: "p", Key: "sk-p"}},
		Models:    []config.Model{{ID: "small", Provider: "p", ProviderModel: "small-upstream", ContextWindow: 1000}},
	})
	codec, err := tokenizer.Get(tokenizer.O200kBase)
	if err != nil {
		t.Fatal(err)
	}
	request := func(text string, maxTokens int) string {
		b, _ := json.Marshal(map[string]any{"model": "auto", "max_tokens": maxTokens,
			"messages": []map[string]string{{"role": "user", "content": text}}})
		return string(b)
	}
	hindi := strings.Repeat("आज मौसम बहुत अच्छा है, इसलिए हम शाम को पार्क में टहलने जाएँगे। ", 12)
	if ids, _, _ := codec.Encode(hindi); len(ids)+500 >= 1000 {
		t.Fatalf("the Hindi prompt is %d tokens: it must fit", len(ids))
	}
	resp, body := post(t, s.URL+"/v1/chat/completions", request(hindi, 500), nil)
	if resp.StatusCode != 200 || resp.Header.Get("x-stellwerk-model") != "small" {
		t.Errorf("a Hindi prompt that fits: %d %.300s", resp.StatusCode, body)
	}

	amharic := strings.Repeat("ዛሬ የአየሩ ሁኔታ በጣም ጥሩ ስለሆነ ምሽት ላይ በፓርኩ ውስጥ ለመዝናናት እንሄዳለን። ", 20)
	ids, _, _ := codec.Encode(amharic)
	if len(ids)+50 <= 1000 {
		t.Fatalf("the Amharic prompt is %d tokens: it must not fit", len(ids))
	}
	sent := len(s.Providers["p"].Requests())
	resp, body = post(t, s.URL+"/v1/chat/completions", request(amharic, 50), nil)
	e := decodeError(t, body)
	if resp.StatusCode != 400 || e.Error.Code != "context_length_exceeded" {
		t.Fatalf("an Amharic prompt of %d tokens with max_tokens 50 to a 1,000-token model: %d %s", len(ids), resp.StatusCode, body)
	}
	if got := len(s.Providers["p"].Requests()); got != sent {
		t.Errorf("the provider got the refused request (%d requests, %d before)", got, sent)
	}
	m := regexp.MustCompile(`(\d+) of input, estimated`).FindStringSubmatch(e.Error.Message)
	if m == nil {
		t.Fatalf("no input estimate in %q", e.Error.Message)
	}
	if est, _ := strconv.Atoi(m[1]); est < len(ids)*3/4 || est > len(ids)*5/4 {
		t.Errorf("input estimated at %d tokens, o200k_base counts %d", est, len(ids))
	}
}
