// Package injection rates how much a prompt looks like a prompt-injection or
// jailbreak attempt, on the request path, before any model sees it.
//
// The score combines two things in one logistic model: hand-written cue
// families (ordered word patterns such as ignore … previous … instructions,
// "do anything now", "stay in character") and hashed, case-folded word
// unigrams and bigrams. Both are extracted in one pass over the bytes with
// fixed-size state on the stack, so Score runs in linear time and does not
// allocate. The weights are trained on the tune split of the labelled data
// and generated into weights_gen.go; see docs/classify/injection.md.
package injection

//go:generate go test -run TestGenerateWeights -update

import (
	"math"
	"math/bits"
)

// Result is the signal for one text.
type Result struct {
	Score    float64 // 0..1
	Detected bool    // Score >= Threshold
	// Rule names the strongest cue that fired (e.g. "ignore_previous_instructions"), "" if none; never prompt text.
	Rule string
}

// Threshold is the default decision threshold. The training program folds
// the chosen operating point into the bias, so 0.5 is the calibrated cut.
const Threshold = 0.5

// RuleLexical is the Rule of a text detected by the word model alone,
// without any hand-written cue firing.
const RuleLexical = "lexical_model"

// minActiveWords damps the word model on very short texts (see Score).
const minActiveWords = 16

// Score rates text. It must not allocate in proportion to the text size.
func Score(text string) Result {
	var f features
	f.extract(text)
	// The word part is a dot product with the L2-normalised presence
	// vector, so a long benign text does not score high merely by
	// containing many words.
	var sum float32
	active := 0
	for k, w := range f.buckets {
		active += bits.OnesCount64(w)
		for w != 0 {
			b := bits.TrailingZeros64(w)
			w &= w - 1
			sum += hashWeights[k*64+b]
		}
	}
	z := float64(bias)
	if active > 0 {
		// Short texts carry little word evidence: a greeting such as "hi"
		// (common at the start of DAN prompts) must not decide alone, so
		// the norm never drops below that of minActiveWords words.
		z += float64(sum) / math.Sqrt(float64(max(active, minActiveWords)))
	}
	rule, best := "", float32(0)
	for c := f.cues; c != 0; c &= c - 1 {
		i := bits.TrailingZeros64(c)
		z += float64(cueWeights[i])
		if rule == "" || cueWeights[i] > best {
			rule, best = cues[i].name, cueWeights[i]
		}
	}
	s := 1 / (1 + math.Exp(-z))
	r := Result{Score: s, Detected: s >= Threshold, Rule: rule}
	if r.Detected && (rule == "" || best <= 0) {
		r.Rule = RuleLexical
	}
	return r
}

const (
	numBuckets = 2048
	bucketMask = numBuckets - 1
)

// features is everything Score reads from a text: which hashed word and
// word-pair buckets occur (presence, not counts, so long texts do not
// saturate the sum) and which cues fired.
type features struct {
	buckets [numBuckets / 64]uint64
	cues    uint64
}

func (f *features) set(h uint32) {
	b := h & bucketMask
	f.buckets[b>>6] |= 1 << (b & 63)
}

// encodedRun is how many consecutive base64 characters (with both cases
// and digits) count as an encoded payload.
const encodedRun = 64

// extract scans text once. Words are runs of ASCII letters and digits
// (lower-cased, apostrophes dropped) or runs of non-ASCII bytes.
func (f *features) extract(text string) {
	var reach [numCues][maxSlots]int32 // word index at which a slot was completed
	for c := range reach {
		for s := range reach[c] {
			reach[c][s] = math.MinInt32 / 2
		}
	}
	var (
		t      int32 // index of the current word
		prev   uint32
		b64    int // current run of base64 bytes
		b64Cls int // character classes seen in it
	)
	n := len(text)
	for i := 0; i < n; {
		c := text[i]
		if !alnum[c] {
			if b64Byte[c] {
				b64++
			} else {
				b64, b64Cls = 0, 0
			}
		}
		var h uint32
		switch {
		case alnum[c]:
			h = fnvOffset
			for i < n {
				c = text[i]
				if k := b64Class[c]; k != 0 { // a letter or a digit: also a base64 byte
					h = (h ^ uint32(lowerTab[c])) * fnvPrime
					b64++
					b64Cls |= int(k)
				} else if c == '\'' && i+1 < n && alnum[text[i+1]] {
					b64, b64Cls = 0, 0 // don't → dont, and the end of a base64 run
				} else if c == 0xE2 && i+3 < n && text[i+1] == 0x80 && text[i+2] == 0x99 && alnum[text[i+3]] {
					i += 2 // don’t → dont
					b64, b64Cls = 0, 0
				} else {
					break
				}
				i++
			}
			if b64 >= encodedRun && b64Cls == 7 {
				f.cues |= 1 << cueEncoded
			}
		case c >= 0x80:
			h = fnvOffset
			for i < n && text[i] >= 0x80 {
				h = (h ^ uint32(text[i])) * fnvPrime
				i++
			}
		default:
			i++
			continue
		}
		f.set(h * 0x9E3779B1 >> 11)
		if t > 0 {
			f.set((prev*0x85EBCA77 ^ h) * 0xC2B2AE3D >> 11)
		}
		if m := classMask(h); m != 0 {
			f.advance(&reach, m, t)
		}
		prev = h
		t++
	}
}

// advance moves every cue that uses one of the classes in mask. A slot
// completed by an earlier word within the cue's gap lets this word complete
// the next one; reach[c][s] < t stops one word completing two slots.
func (f *features) advance(reach *[numCues][maxSlots]int32, mask uint64, t int32) {
	for ; mask != 0; mask &= mask - 1 {
		for _, u := range classUses[bits.TrailingZeros64(mask)] {
			cu := &cues[u.cue]
			if u.slot > 0 {
				r := reach[u.cue][u.slot-1]
				if r >= t || t-r-1 > cu.gap {
					continue
				}
			}
			if int(u.slot) == len(cu.slots)-1 {
				f.cues |= 1 << u.cue
			} else {
				reach[u.cue][u.slot] = t
			}
		}
	}
}

var (
	alnum    [256]bool
	lowerTab [256]byte
	b64Byte  [256]bool
	b64Class [256]uint8 // 1 lower, 2 upper, 4 digit
)

func init() {
	for c := 0; c < 256; c++ {
		b := byte(c)
		lowerTab[c] = b
		switch {
		case 'a' <= b && b <= 'z':
			alnum[c], b64Byte[c], b64Class[c] = true, true, 1
		case 'A' <= b && b <= 'Z':
			alnum[c], b64Byte[c], b64Class[c] = true, true, 2
			lowerTab[c] = b + 'a' - 'A'
		case '0' <= b && b <= '9':
			alnum[c], b64Byte[c], b64Class[c] = true, true, 4
		case b == '+' || b == '/' || b == '=':
			b64Byte[c] = true
		}
	}
}
