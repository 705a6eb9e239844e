package pii

import (
	"slices"
	"strings"
	"testing"
)

// minSynth is the acceptance bar (issue 19) for cards with separators and
// international phone numbers, on the held-out frames.
const minSynth = 0.95

func TestEvaluateSynthetic(t *testing.T) {
	for name, split := range map[string]SynthSplit{"dev": SynthDev, "held-out": SynthHeldOut} {
		t.Run(name, func(t *testing.T) {
			r := EvaluateSynthetic(SynthSeed, split, 1000)
			t.Logf("\n%s", r.Markdown())
			for _, s := range r.Scores {
				if s.Gold != 1000 {
					t.Errorf("%s: %d gold spans, want 1000", s.Type, s.Gold)
				}
				if s.Precision < minSynth || s.Recall < minSynth {
					t.Errorf("%s: precision %.3f recall %.3f, want both >= %.2f", s.Type, s.Precision, s.Recall, minSynth)
				}
			}
		})
	}
}

func TestGenerateSynthetic(t *testing.T) {
	a := GenerateSynthetic(SynthSeed, SynthHeldOut, 300)
	if b := GenerateSynthetic(SynthSeed, SynthHeldOut, 300); !slices.EqualFunc(a, b, func(x, y SynthSentence) bool {
		return x.Text == y.Text && slices.Equal(x.Gold, y.Gold)
	}) {
		t.Fatal("same seed, different sentences")
	}
	dev := GenerateSynthetic(SynthSeed, SynthDev, 300)
	devFrames := map[string]bool{}
	for _, fs := range [][]string{cardFrames[SynthDev], phoneFrames[SynthDev]} {
		for _, f := range fs {
			devFrames[f] = true
		}
	}
	for _, f := range append(slices.Clone(cardFrames[SynthHeldOut]), phoneFrames[SynthHeldOut]...) {
		if devFrames[f] {
			t.Errorf("frame %q is in both splits", f)
		}
	}
	kinds := map[string]int{}
	for _, s := range append(a, dev...) {
		kinds[strings.SplitN(s.Kind, ":", 2)[0]]++
		if strings.HasPrefix(s.Kind, "neg:") {
			if len(s.Gold) != 0 {
				t.Errorf("negative %q has gold spans", s.Text)
			}
			continue
		}
		if len(s.Gold) != 1 {
			t.Fatalf("%q: %d gold spans, want 1", s.Text, len(s.Gold))
		}
		g := s.Gold[0]
		v := s.Text[g.Start:g.End]
		if g.Type == TypeCreditCard {
			var d []byte
			for i := 0; i < len(v); i++ {
				if isDigit(v[i]) {
					d = append(d, v[i])
				}
			}
			if !luhn(d) || !cardIIN(d) {
				t.Errorf("generated card %q fails Luhn or IIN", v)
			}
		}
		if strings.ContainsAny(v[:1]+v[len(v)-1:], " .,") {
			t.Errorf("gold span %q has separators at its ends", v)
		}
	}
	if kinds["card"] != 600 || kinds["phone"] != 600 || kinds["neg"] != 600 {
		t.Errorf("kinds = %v, want 600 of each", kinds)
	}
}
