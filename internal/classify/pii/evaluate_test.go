package pii

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"
)

const presidioData = "../../../../shared/data/pii/presidio_generated_large.json"

// TestEvaluatePresidio is the acceptance bar: precision and recall of at
// least 0.95 for every type the data set labels, gold values that fail
// their own checksum left out.
func TestEvaluatePresidio(t *testing.T) {
	f, err := os.Open(presidioData)
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("%s not present", presidioData)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := EvaluatePresidio(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", rep.Markdown())
	for _, typ := range []string{TypeEmail, TypeIBAN, TypeCreditCard, TypePhone, TypeIPAddress, TypeUSSSN} {
		s, ok := rep.Score(rep.ValidGold, typ)
		if !ok || s.Gold == 0 {
			t.Errorf("%s: no gold spans scored", typ)
			continue
		}
		if s.Precision < 0.95 || s.Recall < 0.95 {
			t.Errorf("%s: precision %.3f recall %.3f, want both >= 0.95", typ, s.Precision, s.Recall)
		}
	}
}

func TestEvaluatePresidioCounting(t *testing.T) {
	// One found email, one missed SSN (no dashes, no cue), one phone that
	// presidio did not label, one invalid gold card, a multi-byte prefix to
	// check code-point offsets.
	data := `[{"full_text": "Grüße: a@b.io and 123456789 or 555-123-4567, card 4111111111111112", "spans": [
		{"entity_type": "EMAIL_ADDRESS", "entity_value": "a@b.io", "start_position": 7, "end_position": 13},
		{"entity_type": "US_SSN", "entity_value": "123456789", "start_position": 18, "end_position": 27},
		{"entity_type": "CREDIT_CARD", "entity_value": "4111111111111112", "start_position": 50, "end_position": 66},
		{"entity_type": "PERSON", "entity_value": "x", "start_position": 0, "end_position": 1}]}]`
	rep, err := EvaluatePresidio(strings.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Score{
		TypeEmail:      {Type: TypeEmail, Gold: 1, Detections: 1, TP: 1, Precision: 1, Recall: 1},
		TypeUSSSN:      {Type: TypeUSSSN, Gold: 1, FN: 1, Precision: 1, Recall: 0},
		TypePhone:      {Type: TypePhone, Detections: 1, FP: 1, Precision: 0, Recall: 1},
		TypeCreditCard: {Type: TypeCreditCard, Gold: 1, FN: 1, Precision: 1, Recall: 0},
	}
	for typ, w := range want {
		if got, _ := rep.Score(rep.Overlap, typ); got != w {
			t.Errorf("%s: got %+v, want %+v", typ, got, w)
		}
	}
	if got, _ := rep.Score(rep.ValidGold, TypeCreditCard); got.Gold != 0 || rep.InvalidGold[TypeCreditCard] != 1 {
		t.Errorf("invalid gold card not left out: %+v, invalid %v", got, rep.InvalidGold)
	}
	if _, err := EvaluatePresidio(strings.NewReader(`{"not": "a list"}`)); err == nil {
		t.Error("want an error for malformed input")
	}
}
