package classify

import (
	"strings"
	"testing"
)

func TestDetectLanguage(t *testing.T) {
	cases := map[string]struct{ text, want string }{
		"english":       {"Can you explain how the garbage collector in Go works and what the trade-offs are?", "en"},
		"english short": {"What is the capital of France?", "en"},
		"german":        {"Kannst du mir bitte erklären, wie die Speicherverwaltung in Go funktioniert und was die Nachteile sind?", "de"},
		"german upper":  {"ÜBER DIE GESCHICHTE DER STADT: WAS IST DAS WICHTIGSTE UND WIE IST ES ENTSTANDEN?", "de"},
		"french":        {"Peux-tu m'expliquer comment fonctionne le ramasse-miettes dans Go et quels sont les inconvénients pour une application ?", "fr"},
		"italian":       {"Puoi spiegarmi come funziona il garbage collector di Go e quali sono gli svantaggi per questa applicazione?", "it"},
		"spanish":       {"¿Puedes explicarme cómo funciona el recolector de basura en Go y cuáles son las desventajas para una aplicación?", "es"},
		"dutch":         {"Kun je mij uitleggen hoe de garbage collector in Go werkt en wat de nadelen zijn voor een applicatie?", "nl"},
		"portuguese":    {"Você pode me explicar como funciona o coletor de lixo em Go e quais são as desvantagens para uma aplicação?", "pt"},
		"polish":        {"Czy możesz mi wyjaśnić, jak działa odśmiecanie pamięci w Go i jakie są jego wady dla aplikacji?", "pl"},
		"code only":     {"func main() { fmt.Println(x+1) }", "unknown"},
		"numbers":       {"12 34 56 78 90", "unknown"},
		"empty":         {"", "unknown"},
		"japanese":      {"ガベージコレクタの仕組みを説明してください。", "unknown"},
		"swedish":       {"Kan du förklara hur skräpsamlaren fungerar?", "unknown"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := DetectLanguage(tc.text); got != tc.want {
				t.Errorf("DetectLanguage(%q) = %s, want %s", tc.text, got, tc.want)
			}
		})
	}
}

func TestDetectLanguageHostileInput(t *testing.T) {
	for _, s := range []string{strings.Repeat("a", 1<<20), strings.Repeat("\xff", 1<<16), strings.Repeat("é", 1<<16)} {
		_ = DetectLanguage(s)
	}
}
