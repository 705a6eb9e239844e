package admin

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/spend"
)

// AuditService is what /audit/pubkey and /admin/audit need of the server.
type AuditService interface {
	// AuditStore is the audit log's store, nil when the log is off.
	AuditStore() *audit.Store
	// AuditKey is the public half of the key checkpoints are signed with.
	AuditKey() audit.PublicKey
}

// ChangeRecorder puts a change of keys, provider keys, config or admin
// state on the audit record (the server implements it when the audit log
// is on). It never blocks.
type ChangeRecorder interface {
	RecordChange(kind, workspace string, c audit.Change)
}

// auditReaders may read audit records: who reviews decisions, and the
// admin. Operators and viewers run the service; they do not read what
// each caller asked for.
var auditReaders = []string{config.RoleAuditor, config.RoleAdmin}

// PubKeyView is the answer of GET /audit/pubkey.
type PubKeyView struct {
	Algorithm string `json:"algorithm"`
	KeyID     string `json:"key_id"`
	// PublicKey is the raw 32-byte key, base64; PEM the same as a PKIX
	// "PUBLIC KEY" block (stellwerk audit verify --pubkey reads either).
	PublicKey string `json:"public_key"`
	PEM       string `json:"pem"`
}

// AuditRecordView is one record of GET /admin/audit: its chain position
// and the record as it was hashed (null once retention removed it).
type AuditRecordView struct {
	Writer    string          `json:"writer"`
	Seq       uint64          `json:"seq"`
	Time      time.Time       `json:"time"`
	Kind      string          `json:"kind"`
	Workspace string          `json:"workspace"`
	ID        string          `json:"id"`
	Hash      string          `json:"hash"`
	Pruned    bool            `json:"pruned,omitempty"`
	Record    json.RawMessage `json:"record"`
}

// AuditPage is the answer of GET /admin/audit.
type AuditPage struct {
	Records []AuditRecordView `json:"records"`
	// NextCursor, when set, is the cursor parameter of the next page.
	NextCursor string `json:"next_cursor,omitempty"`
}

// Page sizes of /admin/audit.
const (
	defaultAuditLimit = 100
	maxAuditLimit     = 1000
)

func registerAudit(guarded func(string, []string, http.HandlerFunc), gate *storeGate, as AuditService, log *zap.Logger) {
	// The public key is no secret, but like everything else on this port
	// it answers only to a token; any role may read it. Check its key id
	// against the one you hold out of band before trusting it.
	guarded("GET /audit/pubkey", readers, func(w http.ResponseWriter, _ *http.Request) {
		if as.AuditStore() == nil {
			writeError(w, apierr.NotFound("audit_disabled", "", "the audit log is disabled (audit.enabled: false)"))
			return
		}
		k := as.AuditKey()
		writeJSON(w, http.StatusOK, PubKeyView{Algorithm: "ed25519", KeyID: k.ID, PublicKey: base64.StdEncoding.EncodeToString(k.Key), PEM: k.PEM()})
	})
	guarded("GET /admin/audit", auditReaders, gate.bound("audit_store_unavailable", searchTimeout, func(w http.ResponseWriter, r *http.Request) {
		st := as.AuditStore()
		if st == nil {
			writeError(w, apierr.NotFound("audit_disabled", "", "the audit log is disabled (audit.enabled: false)"))
			return
		}
		if !knownParams(w, r, "invalid_parameter", "from", "to", "workspace", "decision_id", "kind", "writer", "key", "limit", "cursor") {
			return
		}
		f, after, limit, perr := auditQuery(r)
		if perr != nil {
			writeError(w, perr)
			return
		}
		es, next, err := st.Query(r.Context(), f, after, limit)
		if err != nil {
			log.Warn("audit query failed", zap.Error(err))
			e := apierr.Unavailable("audit_store_unavailable", "the audit store cannot be reached")
			e.RetryAfter = 1
			writeError(w, e)
			return
		}
		page := AuditPage{Records: make([]AuditRecordView, len(es))}
		for i, e := range es {
			v := AuditRecordView{Writer: e.Writer, Seq: e.Seq, Time: e.Time, Kind: e.Kind, Workspace: e.Workspace, ID: e.ID, Hash: e.Hash,
				Pruned: e.Pruned, Record: json.RawMessage("null")}
			if !e.Pruned {
				v.Record = e.Body
			}
			page.Records[i] = v
		}
		if next != nil {
			page.NextCursor = next.String()
		}
		writeJSON(w, http.StatusOK, page)
	}))
}

// auditQuery reads /admin/audit's parameters: from, to (read as
// stellwerk audit export reads them: spend.ParseTime, with dates at
// midnight UTC), workspace, decision_id, kind, writer, key, limit, cursor.
func auditQuery(r *http.Request) (audit.Filter, *audit.Cursor, int, *apierr.Error) {
	q := r.URL.Query()
	var f audit.Filter
	now := time.Now()
	for _, p := range []struct {
		name string
		into *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if v := q.Get(p.name); v != "" {
			t, err := spend.ParseTime(v, now, time.UTC)
			if err != nil {
				return f, nil, 0, apierr.Invalid("invalid_parameter", p.name, "%s: %s", p.name, err)
			}
			*p.into = t
		}
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.To.After(f.From) {
		return f, nil, 0, apierr.Invalid("invalid_parameter", "to", "to must be after from")
	}
	f.Workspace, f.ID, f.Kind, f.Writer, f.Key = q.Get("workspace"), q.Get("decision_id"), q.Get("kind"), q.Get("writer"), q.Get("key")
	if f.Kind != "" && !slices.Contains(audit.Kinds, f.Kind) {
		return f, nil, 0, apierr.Invalid("invalid_parameter", "kind", "kind must be one of %s", strings.Join(audit.Kinds, ", "))
	}
	limit, lerr := pageLimit(q, defaultAuditLimit, maxAuditLimit, "invalid_parameter")
	if lerr != nil {
		return f, nil, 0, lerr
	}
	var after *audit.Cursor
	if v := q.Get("cursor"); v != "" {
		c, err := audit.ParseCursor(v)
		if err != nil {
			return f, nil, 0, apierr.Invalid("invalid_parameter", "cursor", "cursor is not one this API returned")
		}
		after = &c
	}
	return f, after, limit, nil
}
