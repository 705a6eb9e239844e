package secrets

import (
	"slices"
	"testing"
)

func FuzzDetect(f *testing.F) {
	for _, s := range []string{
		"", "password=hunter2fake", fakeGitHub, fakeJWT, fakeRSA, fakeWebhook,
		"postgres://app:fakePw0rd9@db/app", "AccountKey=" + fakeAzureKey,
		`{"type": "service_account", "private_key": "` + fakeSAKey + `"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		ms := Detect(text, nil)
		prev := 0
		for _, m := range ms {
			if m.Start < prev || m.End <= m.Start || m.End > len(text) {
				t.Fatalf("bad span %+v after %d in %d bytes", m, prev, len(text))
			}
			if !slices.Contains(Types, m.Type) {
				t.Fatalf("unknown type %q", m.Type)
			}
			prev = m.End
		}
		// Appending to a non-empty dst keeps what was there.
		seed := []Match{{"x", 0, 0}}
		if got := Detect(text, seed); len(got) != len(ms)+1 || got[0] != seed[0] {
			t.Fatalf("Detect did not append to dst")
		}
	})
}
