package admin

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/store"
)

type auditStatus struct {
	fakeStatus
	st  *audit.Store
	key audit.PublicKey
}

func (a *auditStatus) AuditStore() *audit.Store  { return a.st }
func (a *auditStatus) AuditKey() audit.PublicKey { return a.key }

// TestAuditAPI: the public key answers any role; records only the auditor
// and the admin, filtered and paged.
func TestAuditAPI(t *testing.T) {
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := audit.OpenStore(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	seed := sha256.Sum256([]byte("admin audit test"))
	signer := audit.NewSigner(ed25519.NewKeyFromSeed(seed[:]))
	l, err := audit.Open(ctx, st, signer, audit.Options{Replica: "r1", BatchInterval: 5 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 25 {
		ws := []string{"legal", "support"}[i%2]
		key := "key-ok"
		if i%5 == 0 {
			key = "key-leaked"
		}
		l.Record(&audit.Record{Kind: audit.KindDecision, ID: fmt.Sprintf("d%02d", i), Workspace: ws, Principal: &audit.Principal{KeyID: key},
			Chosen: "m1", Status: 200})
	}
	l.Record(&audit.Record{Kind: audit.KindKey, ID: "c1", Workspace: "legal", Change: &audit.Change{Actor: "admin:root", Action: "revoke", Target: "bot"}})
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	h := Handler(&auditStatus{fakeStatus: fakeStatus{tokens: testTokens()}, st: st, key: signer.Public()}, zap.NewNop())
	bearer := func(role string) string { return "Bearer " + roleTokens[role] }

	for role, want := range map[string]int{config.RoleViewer: 200, config.RoleOperator: 200, config.RoleAuditor: 200, config.RoleAdmin: 200, "": 401} {
		auth := ""
		if role != "" {
			auth = bearer(role)
		}
		t.Setenv("OPS_TOKEN", roleTokens[config.RoleOperator])
		if rec := get(t, h, "/audit/pubkey", auth); rec.Code != want {
			t.Errorf("pubkey as %q: %d", role, rec.Code)
		} else if want == 200 {
			var v PubKeyView
			_ = json.Unmarshal(rec.Body.Bytes(), &v)
			keys, err := audit.ParsePublicKeys([]byte(v.PEM))
			if err != nil || v.KeyID != signer.Public().ID || keys[0].ID != v.KeyID || v.Algorithm != "ed25519" {
				t.Errorf("pubkey %+v %v", v, err)
			}
		}
	}
	for role, want := range map[string]int{config.RoleViewer: 403, config.RoleOperator: 403, config.RoleAuditor: 200, config.RoleAdmin: 200} {
		if rec := get(t, h, "/admin/audit", bearer(role)); rec.Code != want {
			t.Errorf("records as %s: %d", role, rec.Code)
		}
	}

	page := func(q string) AuditPage {
		t.Helper()
		rec := get(t, h, "/admin/audit?"+q, bearer(config.RoleAuditor))
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", q, rec.Code, rec.Body)
		}
		var p AuditPage
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Paging through one workspace: 13 legal decisions and a key change.
	seen, cursor := 0, ""
	for pages := 0; ; pages++ {
		p := page("workspace=legal&limit=5&cursor=" + cursor)
		for _, r := range p.Records {
			if r.Workspace != "legal" || len(r.Record) < 10 {
				t.Errorf("record %+v", r)
			}
		}
		seen += len(p.Records)
		if p.NextCursor == "" {
			if pages != 2 {
				t.Errorf("%d pages", pages+1)
			}
			break
		}
		cursor = p.NextCursor
	}
	if seen != 14 {
		t.Errorf("legal: %d records", seen)
	}
	if p := page("decision_id=d07"); len(p.Records) != 1 || p.Records[0].ID != "d07" {
		t.Errorf("by decision id: %+v", p.Records)
	}
	if p := page("kind=key"); len(p.Records) != 1 || p.Records[0].Kind != "key" {
		t.Errorf("by kind: %+v", p.Records)
	}
	if p := page("from=" + time.Now().Add(time.Hour).Format(time.RFC3339)); len(p.Records) != 0 {
		t.Errorf("future range: %d", len(p.Records))
	}
	// A date is midnight UTC, as the CLI reads it; the records are today's.
	tomorrow := time.Now().UTC().AddDate(0, 0, 1).Format(time.DateOnly)
	if p := page("from=2020-01-01&to=" + tomorrow + "&limit=1000"); len(p.Records) == 0 {
		t.Errorf("a range of dates found nothing")
	}
	// One key's records (a leaked key's: d00, d05, … d20), alone and in a
	// workspace, paged.
	for q, want := range map[string][]string{
		"key=key-leaked":                          {"d00", "d05", "d10", "d15", "d20"},
		"key=key-leaked&limit=2":                  {"d00", "d05", "d10", "d15", "d20"},
		"key=key-leaked&workspace=legal":          {"d00", "d10", "d20"},
		"key=key-leaked&workspace=legal&kind=key": nil,
		"key=nobody":                              nil,
	} {
		var got []string
		for cursor := ""; ; {
			p := page(q + "&cursor=" + cursor)
			for _, r := range p.Records {
				got = append(got, r.ID)
			}
			if cursor = p.NextCursor; cursor == "" {
				break
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", q, got, want)
		}
	}
	// Times as the CLI reads them: a duration ago, a number of days, now.
	for q, want := range map[string]int{"from=1h": 26, "from=7d&to=now": 26, "to=1h": 0, "from=90m&key=key-leaked": 5} {
		if p := page(q + "&limit=1000"); len(p.Records) != want {
			t.Errorf("%s: %d records, want %d", q, len(p.Records), want)
		}
	}
	for _, q := range []string{"kind=bogus", "from=-1h", "to=1y", "limit=0", "limit=1001", "from=yesterday", "cursor=bm90LWEtY3Vyc29y",
		"from=2026-12-06&to=2026-12-05", "from=2026-12-06&to=2026-12-06",
		// A misspelt filter gave every workspace's records.
		"worksapce=legal", "decision=abc", "workspace=a&workspace=b"} {
		if rec := get(t, h, "/admin/audit?"+q, bearer(config.RoleAdmin)); rec.Code != http.StatusBadRequest {
			t.Errorf("%s: %d", q, rec.Code)
		}
	}
}
