// Package task classifies what a chat request asks the model to do (write code, translate,
// summarize, …) from its user text, so the router can pick a model by task.
//
// It runs on the request path: pure Go, no model files, no allocations, linear time. A
// handful of hand-written cues (fenced code, math notation, "translate … into German",
// "TL;DR", role-play openers, …) feed a small multinomial logistic regression over hashed
// word uni- and bigrams whose weights are generated from the labelled set in testdata
// (see gen_test.go and docs/classify/task.md).
package task

import "math"

// Task names. They are part of the router's configuration surface, so they never change.
const (
	Code            = "code"
	Math            = "math"
	Reasoning       = "reasoning"
	Extraction      = "extraction"
	Summarization   = "summarization"
	Translation     = "translation"
	CreativeWriting = "creative_writing"
	KnowledgeQA     = "knowledge_qa"
	Classification  = "classification"
	Chat            = "chat"
)

// Tasks lists every task name in a stable order; model weights and reports use this order.
var Tasks = []string{
	Code, Math, Reasoning, Extraction, Summarization,
	Translation, CreativeWriting, KnowledgeQA, Classification, Chat,
}

const numClasses = 10

// Result is the classification of one text.
type Result struct {
	Task string // one of Tasks
	// Confidence is the winning class's softmax probability, in [0, 1].
	Confidence float64
	// Cue names the strongest hand-written signal behind the decision (e.g. "code_block",
	// "translate_verb"), or "word_ngrams" when the bag of words decided alone. It never
	// contains prompt text, so it is safe to log and to put in explain output.
	Cue string
}

// systemWeight scales the system prompt's evidence: it describes the assistant more often
// than the task at hand, so it only tips close calls.
const systemWeight = 0.3

// Classify rates user, the concatenated user text of a request; system is the system prompt,
// possibly empty, and counts as weaker evidence. Texts longer than 20 KB are analysed by
// their first 16 KB and last 4 KB (instructions sit at either end of pasted material).
func Classify(system, user string) Result {
	sys := ReadSystem(system)
	return ClassifyRead(&sys, user)
}

// System is a system prompt as Classify reads it: the features of its first 4 KB. An
// application sends the same system prompt with every request; the classifier keeps this
// for it (internal/classify/memo.go) and passes it to ClassifyRead instead of the text.
type System struct {
	f       features
	present bool // the system prompt is not empty
}

// ReadSystem reads a system prompt, possibly empty.
func ReadSystem(system string) System {
	s := System{present: system != ""}
	if s.present {
		s.f.extract(system, systemHead, 0)
	}
	return s
}

// ClassifyRead is Classify with the system prompt already read: the same result.
func ClassifyRead(sys *System, user string) Result {
	var uf features
	uf.extract(user, userHead, userTail)
	if uf.words == 0 && uf.cueSum() == 0 && !sys.present {
		return Result{Task: Chat, Confidence: 1.0 / numClasses, Cue: "empty"}
	}
	var logits [numClasses]float64
	for c := range logits {
		logits[c] = float64(cueWeights[numCues*numClasses+c])
	}
	scale := 1.0
	if uf.words == 0 && uf.cueSum() == 0 {
		scale = 0 // no user evidence: let the system prompt decide at full weight
	}
	uf.addLogits(&logits, scale)
	if sys.present {
		sw := systemWeight
		if scale == 0 {
			sw = 1
		}
		sys.f.addLogits(&logits, sw)
	}

	best := 0
	for c := 1; c < numClasses; c++ {
		if logits[c] > logits[best] {
			best = c
		}
	}
	var sum float64
	for c := range logits {
		sum += math.Exp(logits[c] - logits[best])
	}
	conf := 1 / sum
	if math.IsNaN(conf) {
		conf = 0
	}
	return Result{Task: Tasks[best], Confidence: conf, Cue: strongestCue(&uf, &sys.f, scale, best)}
}

// strongestCue names the hand-written cue that pushed hardest toward class c.
func strongestCue(uf, sf *features, scale float64, c int) string {
	bestK, bestV := -1, 0.25 // below this a cue did not matter; the n-grams decided
	for k := 0; k < numCues; k++ {
		v := float64(cueWeights[k*numClasses+c]) * (scale*float64(uf.cues[k]) + systemWeight*float64(sf.cues[k]))
		if v > bestV {
			bestK, bestV = k, v
		}
	}
	if bestK < 0 {
		return "word_ngrams"
	}
	return cueNames[bestK]
}
