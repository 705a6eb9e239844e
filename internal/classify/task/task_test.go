package task

import (
	"slices"
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	tests := map[string]struct {
		system, user string
		want         string
	}{
		"code: fenced go":                        {user: "What does this print?\n```go\nfor i := 0; i < 3; i++ {\n\tdefer fmt.Println(i)\n}\n```", want: Code},
		"code: write a function":                 {user: "Write a function in Python that merges two sorted lists.", want: Code},
		"code: stack trace":                      {user: "Getting this when I run my script, how do I fix it?\nTraceback (most recent call last):\n  File \"app.py\", line 3, in <module>\n    import pandas\nModuleNotFoundError: No module named 'pandas'", want: Code},
		"code: german":                           {user: "Schreibe eine Funktion in JavaScript, die prüft, ob eine Zahl gerade ist.", want: Code},
		"math: equation":                         {user: "Solve 5x - 3 = 2x + 9 for x.", want: Math},
		"math: word problem":                     {user: "A shop sells apples at $0.40 each. How much do 35 apples cost after a 10% discount?", want: Math},
		"math: french":                           {user: "Calcule l'intégrale de x² entre 0 et 3.", want: Math},
		"math: proof":                            {user: "Prove that the product of two odd integers is odd.", want: Math},
		"reasoning: riddle":                      {user: "Riddle: the more you take, the more you leave behind. What am I?", want: Reasoning},
		"reasoning: logic puzzle":                {user: "If no reptiles have fur and all snakes are reptiles, can any snake have fur? Explain your reasoning step by step.", want: Reasoning},
		"extraction: json":                       {user: "Extract the name, phone number and email from this signature as JSON:\n\nBest, Laura Smith | +44 20 7946 0958 | laura@smith.co.uk", want: Extraction},
		"extraction: list all":                   {user: "List all the dates mentioned in the following text: The kickoff was on 3 May, the review on 17 June and launch on 1 September.", want: Extraction},
		"summarization: tldr":                    {user: "tl;dr please:\n\nThe committee met for three hours to discuss the budget. After a long debate about whether to fund the new library wing or repair the roads, they agreed to split the money, with 60% going to road repairs. A final vote is scheduled for next month.", want: Summarization},
		"summarization: spanish":                 {user: "Resume en dos frases este texto: La empresa anunció hoy que abrirá una nueva fábrica en Valencia que creará 400 empleos. La inversión asciende a 80 millones de euros y la producción comenzará en 2026.", want: Summarization},
		"translation: into language":             {user: "Translate into French: 'The museum is closed on Mondays.'", want: Translation},
		"translation: italian verb":              {user: "Traduci in tedesco: \"Dove posso comprare i biglietti per l'autobus?\"", want: Translation},
		"creative: poem":                         {user: "Write a poem about a lonely lighthouse.", want: CreativeWriting},
		"creative: story german":                 {user: "Schreib mir eine lustige Geschichte über einen Hund, der Astronaut werden will.", want: CreativeWriting},
		"knowledge: who":                         {user: "Who discovered penicillin?", want: KnowledgeQA},
		"knowledge: why":                         {user: "Why do leaves change color in the fall?", want: KnowledgeQA},
		"knowledge: spanish":                     {user: "¿Cuál es la capital de Canadá?", want: KnowledgeQA},
		"classification: sentiment":              {user: "Is the sentiment of this review positive or negative? \"The hotel was dirty and the staff ignored us.\"", want: Classification},
		"classification: categorize":             {user: "Categorize these transactions as food, travel or utilities: electricity bill, train ticket, pizza.", want: Classification},
		"chat: greeting":                         {user: "hello! how's it going?", want: Chat},
		"chat: advice":                           {user: "I feel stressed about moving to a new city alone. Any advice?", want: Chat},
		"chat: french":                           {user: "Coucou, tu vas bien ? Je m'ennuie ce soir.", want: Chat},
		"system only decides when user is empty": {system: "Translate everything the user says into German.", user: "", want: Translation},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := Classify(tc.system, tc.user)
			if got.Task != tc.want {
				t.Errorf("Classify() = %+v, want task %s", got, tc.want)
			}
			if got.Confidence < 0 || got.Confidence > 1 {
				t.Errorf("confidence %v out of [0,1]", got.Confidence)
			}
		})
	}
}

func TestClassifyCue(t *testing.T) {
	tests := map[string]struct {
		user, want string
	}{
		"fenced code":    {user: "```\nfor i in range(10):\n    print(i)\n```\nWhy does this not print 10?", want: "code_block"},
		"translate verb": {user: "Please translate this to Spanish: good luck with the exam", want: "translate_verb"},
		"empty":          {user: "", want: "empty"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := Classify("", tc.user)
			if got.Cue != tc.want && !(tc.want == "translate_verb" && got.Cue == "language_name") {
				t.Errorf("Cue = %q, want %q (result %+v)", got.Cue, tc.want, got)
			}
		})
	}
}

func TestCueNamesHaveNoPromptText(t *testing.T) {
	secret := "zebracorn-7731"
	for _, u := range []string{secret, "translate " + secret + " into German", "```\n" + secret + "\n```"} {
		if got := Classify(secret, u); strings.Contains(got.Cue, "zebra") || !slices.Contains(append(cueNames[:], "word_ngrams", "empty"), got.Cue) {
			t.Errorf("Cue = %q is not a fixed cue name", got.Cue)
		}
	}
}

// TestKeywordsMatchScanner guards against the keyword hasher drifting from the scanner:
// every keyword entry, scanned as text, must hit its own group.
func TestKeywordsMatchScanner(t *testing.T) {
	for g, list := range keywords {
		for _, entry := range strings.Fields(list) {
			var f features
			s := scanner{f: &f}
			s.scan(strings.ReplaceAll(entry, "_", " "))
			s.endWord()
			if s.groups[g] == 0 {
				t.Errorf("keyword %q does not hit group %s", entry, cueNames[g])
			}
		}
	}
}

func TestClassifyDoesNotAllocate(t *testing.T) {
	text := strings.Repeat("Translate this sentence into German, please: the weather is nice today. ", 40)
	if n := testing.AllocsPerRun(100, func() { Classify("You are a helpful assistant.", text) }); n != 0 {
		t.Errorf("Classify allocates %v times per call, want 0", n)
	}
}

func TestLongInputUsesHeadAndTail(t *testing.T) {
	doc := strings.Repeat("The river flows through the valley and the farmers grow wheat. ", 20000) // ~1.3 MB
	got := Classify("", doc+"\n\nSummarize the text above in three sentences.")
	if got.Task != Summarization {
		t.Errorf("instruction at the end of a 1 MB text: got %+v, want summarization", got)
	}
	got = Classify("", "Translate the following into Italian:\n\n"+doc)
	if got.Task != Translation {
		t.Errorf("instruction at the start of a 1 MB text: got %+v, want translation", got)
	}
}

func TestAdversarialInputs(t *testing.T) {
	tests := map[string]string{
		"one huge word":    strings.Repeat("a", 1<<20),
		"invalid utf-8":    strings.Repeat("\xff\xfe\xc3\x28\xe2\x82", 50000),
		"repeated punct":   strings.Repeat("?!`_\\$=({", 100000),
		"nul bytes":        strings.Repeat("\x00", 100000),
		"fence storm":      strings.Repeat("`", 300000),
		"only newlines":    strings.Repeat("\n", 300000),
		"latin-1 capitals": strings.Repeat("ÄÖÜÉÀ ", 50000),
	}
	for name, text := range tests {
		t.Run(name, func(t *testing.T) {
			got := Classify(text, text)
			if !slices.Contains(Tasks, got.Task) || got.Confidence < 0 || got.Confidence > 1 {
				t.Errorf("Classify() = %+v", got)
			}
		})
	}
}

func FuzzClassify(f *testing.F) {
	for _, s := range []string{"", "hi", "Translate to German: hello", "```go\nfunc main() {}\n```", "x^2 + 3x = 7", "_ _ _", "\xc3"} {
		f.Add("", s)
	}
	f.Fuzz(func(t *testing.T, system, user string) {
		got := Classify(system, user)
		if !slices.Contains(Tasks, got.Task) {
			t.Fatalf("task %q not in Tasks", got.Task)
		}
		if !(got.Confidence >= 0 && got.Confidence <= 1) {
			t.Fatalf("confidence %v out of [0,1]", got.Confidence)
		}
		if got.Cue == "" {
			t.Fatal("empty cue")
		}
	})
}
