package cli

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/spend"
)

// raw reports whether s holds a character a terminal would not draw as
// itself.
func raw(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r != '\n' && r != '\t' && hidden(r) })
}

// TestShown: a value with a bidi override, an isolate, a zero-width or tag
// character, a control or a Hangul filler prints Go-quoted with each
// escaped, so it reads as its characters are; any other value prints as
// it is, Arabic and Chinese included; a quoted form cannot be taken for a
// plain value, and it unquotes to the exact value.
func TestShown(t *testing.T) {
	for name, c := range map[string]struct{ in, want string }{
		"ascii":              {"support-bot", "support-bot"},
		"other scripts":      {"مرحبا 你好 Grüße", "مرحبا 你好 Grüße"},
		"empty":              {"", ""},
		"override":           {"admin\u202etxt.exe", `"admin\u202etxt.exe"`},
		"isolates":           {"a\u2066b\u2069", `"a\u2066b\u2069"`},
		"zero width":         {"\u200b", `"\u200b"`},
		"arabic letter mark": {"x\u061c", `"x\u061c"`},
		"bom":                {"\ufeffid", `"\ufeffid"`},
		"tags":               {"app\U000e0041", `"app\U000e0041"`},
		"escape sequence":    {"\x1b[2Jok", `"\x1b[2Jok"`},
		"c1 control":         {"a\u0085b", `"a\u0085b"`},
		"line break":         {"a\nb", `"a\nb"`},
		"hangul filler":      {"\u3164", `"\u3164"`},
		"not utf-8":          {"a\xffb", `"a\xffb"`},
		"a quote first":      {`"admin"`, `"\"admin\""`},
		"a backslash inside": {`a\u202e`, `a\u202e`},
	} {
		t.Run(name, func(t *testing.T) {
			got := shown(c.in)
			if got != c.want {
				t.Errorf("shown(%q) = %s, want %s", c.in, got, c.want)
			}
			if raw(got) {
				t.Errorf("shown(%q) holds a hidden character: %q", c.in, got)
			}
			if got != c.in {
				if back, err := strconv.Unquote(got); err != nil || back != c.in {
					t.Errorf("shown(%q) = %s unquotes to %q (%v)", c.in, got, back, err)
				}
			}
		})
	}
}

// TestShownJSON: JSON text printed for a person keeps its white space and
// is the same JSON, with each hidden character as its escape.
func TestShownJSON(t *testing.T) {
	v := map[string]string{"user": "admin\u202etxt.exe", "app": "x\U000e0041\u200b", "name": "Grüße"}
	b, _ := json.MarshalIndent(v, "", "\t")
	got := shownJSON(string(b))
	if raw(got) || !strings.Contains(got, `admin\u202etxt.exe`) || !strings.Contains(got, `x\udb40\udc41\u200b`) || !strings.Contains(got, "Grüße") {
		t.Errorf("shownJSON:\n%s", got)
	}
	var back map[string]string
	if err := json.Unmarshal([]byte(got), &back); err != nil || back["user"] != v["user"] || back["app"] != v["app"] {
		t.Errorf("shownJSON is not the same JSON: %v %q", err, back)
	}
}

// TestHumanOutputsShowHiddenCharacters: the spend table, a replay's
// summary and its diff print a value a client chose (a user, a policy's
// reason quoting the request) escaped, not as a line the terminal
// reorders.
func TestHumanOutputsShowHiddenCharacters(t *testing.T) {
	var out bytes.Buffer
	rep := &spend.Report{Since: time.Unix(0, 0), Until: time.Unix(3600, 0), TimeZone: "UTC", GroupBy: []spend.Dim{"user"},
		Groups: []spend.Group{{Values: []string{"admin\u202etxt.exe"}, Sums: spend.Sums{Requests: 1}}}}
	if err := spendTable(&out, rep); err != nil {
		t.Fatal(err)
	}
	if raw(out.String()) || !strings.Contains(out.String(), `"admin\u202etxt.exe"`) {
		t.Errorf("spend table:\n%s", out.String())
	}
	e := &replayExplanation{Error: "403 policy_denied: user admin\u202etxt.exe is blocked"}
	if s := summary(e); raw(s) || !strings.Contains(s, `admin\u202etxt.exe`) {
		t.Errorf("replay summary: %q", s)
	}
	out.Reset()
	diffLines(&out, "recorded", "today", e, &replayExplanation{Chosen: "alpha-model"})
	if raw(out.String()) || !strings.Contains(out.String(), `admin\u202etxt.exe`) {
		t.Errorf("replay diff:\n%s", out.String())
	}
}

// TestShownVariationSelectors (the red team): a variation selector, the
// combining grapheme joiner or the braille blank draws as nothing, and
// QuoteToGraphic keeps them: "alice" and "alice\uFE0F" looked the same.
func TestShownVariationSelectors(t *testing.T) {
	for in, want := range map[string]string{
		"alice\uFE0F":     `"alice\ufe0f"`,
		"bob\u034F":       `"bob\u034f"`,
		"\u2800":          `"\u2800"`,
		"carol\U000E0100": `"carol\U000e0100"`,
	} {
		if got := shown(in); got != want {
			t.Errorf("shown(%q) = %s, want %s", in, got, want)
		}
	}
}
