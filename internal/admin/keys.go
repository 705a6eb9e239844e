package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/keys"
	"github.com/stellwerk/stellwerk/internal/request"
	"github.com/stellwerk/stellwerk/internal/store"
)

// KeyService is what /admin/keys and /admin/provider-keys need of the
// server: the key store and the config in force (to check workspaces,
// teams and models).
type KeyService interface {
	Keys() *keys.Store
	Config() *config.Config
	// KeysChanged reads the key store again into the replica's table, so
	// that a change answered by this replica holds on it when the answer
	// is sent (other replicas follow within state.refresh_interval).
	KeysChanged(ctx context.Context) error
}

// keyWriters may create, rotate and revoke keys and set provider keys.
var keyWriters = []string{config.RoleAdmin}

// maxAdminBody bounds a request body of the admin API.
const maxAdminBody = 64 << 10

// refresh brings this replica's key table up to a change just written;
// one that fails is logged (the table's own refresh retries it).
func (h *keysAPI) refresh(r *http.Request) {
	if err := h.ks.KeysChanged(r.Context()); err != nil {
		h.log.Warn("the key table was not refreshed after a change; it will be within state.refresh_interval", zap.Error(err))
	}
}

// KeyView is a key as the admin API and the CLI show it: the record and its
// status, never a secret.
type KeyView struct {
	keys.Key
	Status string `json:"status"`
}

// View renders a key at now.
func View(k keys.Key, now time.Time) KeyView { return KeyView{Key: k, Status: k.Status(now)} }

// KeyWithSecret is the answer to create and rotate: the only time the
// secret is shown.
type KeyWithSecret struct {
	Key    KeyView `json:"key"`
	Secret string  `json:"secret"`
}

// CreateKeyRequest is the body of POST /admin/keys: a spec, with expiry
// given as expires_at (RFC 3339) or expires_in (a Go duration, e.g. 720h).
type CreateKeyRequest struct {
	keys.Spec
	ExpiresIn string `json:"expires_in,omitempty"`
}

// RotateKeyRequest is the optional body of POST /admin/keys/{id}/rotate.
type RotateKeyRequest struct {
	// Grace keeps the old secret working this long (a Go duration; at most
	// 168h).
	Grace string `json:"grace,omitempty"`
}

// RevokeKeyRequest is the optional body of POST /admin/keys/{id}/revoke.
type RevokeKeyRequest struct {
	// Reason is put on the audit record of the revocation (one line, at
	// most MaxRevokeReason bytes).
	Reason string `json:"reason,omitempty"`
}

// MaxRevokeReason bounds a revocation's reason: a ticket and a sentence.
const MaxRevokeReason = 256

// CheckRevokeReason refuses a reason that is too long or not one line of
// printable text (a newline or a control character would let it read as
// something else in a log or a table).
func CheckRevokeReason(reason string) error {
	if len(reason) > MaxRevokeReason {
		return &keys.InvalidError{Field: "reason", Msg: fmt.Sprintf("at most %d bytes", MaxRevokeReason)}
	}
	if !OneLine(reason) {
		return &keys.InvalidError{Field: "reason", Msg: "must be one line of text, without control, bidi or zero-width characters"}
	}
	return nil
}

// OneLine reports whether s is one line of printable text: valid UTF-8
// without control, format (bidi, zero-width) or line and paragraph
// separator characters (U+2028, U+2029 break a line too: the red team).
func OneLine(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, func(c rune) bool {
		return unicode.IsControl(c) || unicode.In(c, unicode.Cf, unicode.Zl, unicode.Zp)
	})
}

// RevokeDetail is the detail of a revocation's audit record.
func RevokeDetail(reason string) map[string]string {
	if reason == "" {
		return nil
	}
	return map[string]string{"reason": reason}
}

// CreateDetail is the detail of a key creation's audit record: what the
// key may do (its principal, models, routes, expiry, limits and
// metadata), never its secret, prefix or digest. The record had none, so
// the log could not say what a leaked key had been allowed (the incident
// probe's F10).
func CreateDetail(k keys.Key) map[string]string {
	d := map[string]string{}
	set := func(name, v string) {
		if v != "" {
			d[name] = v
		}
	}
	set("team", k.Team)
	set("user", k.User)
	set("models", strings.Join(k.Models, ","))
	set("routes", strings.Join(k.Routes, ","))
	if !k.ExpiresAt.IsZero() {
		d["expires_at"] = k.ExpiresAt.UTC().Format(time.RFC3339)
	}
	if !k.Limits.IsZero() {
		b, _ := json.Marshal(k.Limits)
		d["limits"] = string(b)
	}
	if len(k.Metadata) > 0 {
		b, _ := json.Marshal(k.Metadata)
		d["metadata"] = string(b)
	}
	if len(d) == 0 {
		return nil
	}
	return d
}

// ProviderKeyRequest is the body of PUT /admin/provider-keys/{ws}/{provider}.
type ProviderKeyRequest struct {
	Secret string `json:"secret"`
}

// registerKeys registers the key endpoints, each bound by guarded, but
// rotate-master, which re-encrypts every provider key one transaction
// each, by long.
func registerKeys(guarded, long func(string, []string, http.HandlerFunc), ks KeyService, log *zap.Logger) {
	h := &keysAPI{ks: ks, log: log}
	h.rec, _ = ks.(ChangeRecorder)
	guarded("GET /admin/keys", readers, h.list)
	guarded("POST /admin/keys", keyWriters, h.create)
	guarded("GET /admin/keys/{id}", readers, h.show)
	guarded("POST /admin/keys/{id}/rotate", keyWriters, h.rotate)
	guarded("POST /admin/keys/{id}/revoke", keyWriters, h.revoke)
	guarded("PUT /admin/keys/{id}/limits", keyWriters, h.setLimits)
	guarded("PUT /admin/keys/{id}/models", keyWriters, h.setModels)
	guarded("GET /admin/provider-keys", readers, h.listProvider)
	guarded("PUT /admin/provider-keys/{workspace}/{provider}", keyWriters, h.setProvider)
	guarded("DELETE /admin/provider-keys/{workspace}/{provider}", keyWriters, h.deleteProvider)
	long("POST /admin/provider-keys/rotate-master", keyWriters, h.rotateMaster)
}

type keysAPI struct {
	ks  KeyService
	log *zap.Logger
	rec ChangeRecorder // nil: no audit log
}

// changed puts a key change on the audit record, with the admin token
// that made it.
func (h *keysAPI) changed(r *http.Request, kind, workspace, action, target string, detail map[string]string) {
	if h.rec != nil {
		h.rec.RecordChange(kind, workspace, audit.Change{Actor: by(r), Action: action, Target: target, Detail: detail})
	}
}

// by names who did something, for the key's record: the admin token's id.
func by(r *http.Request) string {
	c, _ := CallerFrom(r.Context())
	return "admin:" + c.TokenID
}

func (h *keysAPI) store(w http.ResponseWriter) *keys.Store {
	s := h.ks.Keys()
	if s == nil {
		writeError(w, apierr.Unavailable("key_store_unavailable", "this server has no key store"))
	}
	return s
}

// KeyPage is the answer of GET /admin/keys: a page of keys in the order of
// their ids, in OpenAI's list shape.
type KeyPage struct {
	Object string    `json:"object"` // "list"
	Data   []KeyView `json:"data"`
	// HasMore says more keys match; NextCursor, then set, is the cursor
	// parameter of the next page.
	HasMore    bool   `json:"has_more"`
	NextCursor string `json:"next_cursor,omitempty"`
	// ConfigKeys are stellwerk.yaml's keys that match the filters, on the
	// first page only (no cursor): they serve, but are not the store's, so
	// they are not in data, whose ids the per-key endpoints take.
	ConfigKeys []keys.ConfigKey `json:"config_keys,omitempty"`
}

// Page sizes of /admin/keys: a caller that gives no limit gets the first
// 100 keys, never all (50,000 keys were 16 MB in 1.7 s: the data-volume
// probe).
const (
	defaultKeysLimit = 100
	maxKeysLimit     = keys.MaxPage
)

func (h *keysAPI) list(w http.ResponseWriter, r *http.Request) {
	s := h.store(w)
	if s == nil {
		return
	}
	if !knownParams(w, r, "invalid_filter", "workspace", "team", "user", "status", "limit", "cursor") {
		return
	}
	q := r.URL.Query()
	f := keys.Filter{Workspace: q.Get("workspace"), Team: q.Get("team"), User: q.Get("user"), Status: q.Get("status")}
	if err := f.CheckConfig(h.ks.Config()); err != nil {
		var bad *keys.InvalidError
		errors.As(err, &bad)
		writeError(w, apierr.Invalid("invalid_filter", bad.Field, "%s %s", bad.Field, bad.Msg))
		return
	}
	limit, lerr := pageLimit(q, defaultKeysLimit, maxKeysLimit, "invalid_filter")
	if lerr != nil {
		writeError(w, lerr)
		return
	}
	after := ""
	if v := q.Get("cursor"); v != "" {
		id, err := keys.ParseCursor(v)
		if err != nil {
			writeError(w, apierr.Invalid("invalid_filter", "cursor", "cursor is not one this API returned"))
			return
		}
		after = id
	}
	ks, more, err := s.ListPage(r.Context(), f, after, limit)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	now := time.Now()
	page := KeyPage{Object: "list", Data: make([]KeyView, len(ks)), HasMore: more}
	for i, k := range ks {
		page.Data[i] = View(k, now)
	}
	if more {
		page.NextCursor = keys.Cursor(ks[len(ks)-1].ID)
	}
	if after == "" {
		page.ConfigKeys = keys.ConfigKeys(h.ks.Config(), f)
	}
	writeJSON(w, http.StatusOK, page)
}

func (h *keysAPI) show(w http.ResponseWriter, r *http.Request) {
	s := h.store(w)
	if s == nil {
		return
	}
	k, err := s.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		h.failKey(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, View(k, time.Now()))
}

func (h *keysAPI) create(w http.ResponseWriter, r *http.Request) {
	s := h.store(w)
	if s == nil {
		return
	}
	var req CreateKeyRequest
	if !decodeBody(w, r, &req, false) {
		return
	}
	spec, err := req.Resolve(time.Now())
	if err == nil {
		err = spec.CheckConfig(h.ks.Config())
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	k, secret, err := s.Create(r.Context(), spec, by(r))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("virtual key created", zap.String("key_id", k.ID), zap.String("workspace", k.Workspace), zap.String("by", k.CreatedBy))
	h.changed(r, audit.KindKey, k.Workspace, "create", k.ID, CreateDetail(k))
	h.refresh(r)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, KeyWithSecret{Key: View(k, time.Now()), Secret: secret})
}

// Resolve turns expires_in into expires_at; a key that would be expired
// when made is refused, as a negative expires_in is.
func (c CreateKeyRequest) Resolve(now time.Time) (keys.Spec, error) {
	spec := c.Spec
	if c.ExpiresIn == "" {
		if !spec.ExpiresAt.IsZero() && !spec.ExpiresAt.After(now) {
			return spec, &keys.InvalidError{Field: "expires_at", Msg: "must be in the future"}
		}
		return spec, nil
	}
	if !spec.ExpiresAt.IsZero() {
		return spec, &keys.InvalidError{Field: "expires_in", Msg: "give expires_at or expires_in, not both"}
	}
	d, err := time.ParseDuration(c.ExpiresIn)
	if err != nil || d <= 0 {
		return spec, &keys.InvalidError{Field: "expires_in", Msg: "must be a positive duration such as 720h"}
	}
	spec.ExpiresAt = now.Add(d)
	return spec, nil
}

func (h *keysAPI) rotate(w http.ResponseWriter, r *http.Request) {
	s := h.store(w)
	if s == nil {
		return
	}
	var req RotateKeyRequest
	if !decodeBody(w, r, &req, true) {
		return
	}
	var grace time.Duration
	if req.Grace != "" {
		d, err := time.ParseDuration(req.Grace)
		if err != nil {
			h.fail(w, r, &keys.InvalidError{Field: "grace", Msg: "must be a duration such as 1h"})
			return
		}
		grace = d
	}
	k, secret, err := s.Rotate(r.Context(), r.PathValue("id"), grace, by(r))
	if err != nil {
		h.failKey(w, r, err)
		return
	}
	h.log.Info("virtual key rotated", zap.String("key_id", k.ID), zap.Duration("grace", grace), zap.String("by", k.RotatedBy))
	h.changed(r, audit.KindKey, k.Workspace, "rotate", k.ID, map[string]string{"grace": grace.String()})
	h.refresh(r)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, KeyWithSecret{Key: View(k, time.Now()), Secret: secret})
}

// setLimits replaces a key's own budgets and rate limits: PUT
// /admin/keys/{id}/limits with {"budgets": [...], "rate_limit": {...}}
// ({} removes them). A FinOps team raises a key's cap without a new key
// and a new secret (a helper's finding).
func (h *keysAPI) setLimits(w http.ResponseWriter, r *http.Request) {
	s := h.store(w)
	if s == nil {
		return
	}
	var l config.Limits
	if !decodeBody(w, r, &l, false) {
		return
	}
	k, err := s.SetLimits(r.Context(), r.PathValue("id"), l, by(r))
	if err != nil {
		h.failKey(w, r, err)
		return
	}
	detail, _ := json.Marshal(k.Limits)
	h.log.Info("virtual key's limits set", zap.String("key_id", k.ID), zap.String("by", by(r)))
	h.changed(r, audit.KindKey, k.Workspace, "limits", k.ID, map[string]string{"limits": string(detail)})
	h.refresh(r)
	writeJSON(w, http.StatusOK, View(k, time.Now()))
}

// SetModelsRequest is the body of PUT /admin/keys/{id}/models.
type SetModelsRequest struct {
	// Models are the model ids and provider:<name> the key may use; none:
	// what its workspace allows.
	Models []string `json:"models"`
}

func (h *keysAPI) setModels(w http.ResponseWriter, r *http.Request) {
	s := h.store(w)
	if s == nil {
		return
	}
	var req SetModelsRequest
	if !decodeBody(w, r, &req, false) {
		return
	}
	k, err := s.SetModels(r.Context(), r.PathValue("id"), req.Models, h.ks.Config(), by(r))
	if err != nil {
		h.failKey(w, r, err)
		return
	}
	h.log.Info("virtual key's models set", zap.String("key_id", k.ID), zap.String("by", by(r)))
	h.changed(r, audit.KindKey, k.Workspace, "models", k.ID, map[string]string{"models": strings.Join(k.Models, ",")})
	h.refresh(r)
	writeJSON(w, http.StatusOK, View(k, time.Now()))
}

func (h *keysAPI) revoke(w http.ResponseWriter, r *http.Request) {
	s := h.store(w)
	if s == nil {
		return
	}
	var req RevokeKeyRequest
	if !decodeBody(w, r, &req, true) {
		return
	}
	if err := CheckRevokeReason(req.Reason); err != nil {
		h.fail(w, r, err)
		return
	}
	k, err := s.Revoke(r.Context(), r.PathValue("id"), by(r))
	if err != nil {
		h.failKey(w, r, err)
		return
	}
	h.log.Info("virtual key revoked", zap.String("key_id", k.ID), zap.String("by", k.RevokedBy), zap.String("reason", req.Reason))
	h.changed(r, audit.KindKey, k.Workspace, "revoke", k.ID, RevokeDetail(req.Reason))
	h.refresh(r)
	writeJSON(w, http.StatusOK, View(k, time.Now()))
}

func (h *keysAPI) listProvider(w http.ResponseWriter, r *http.Request) {
	s := h.store(w)
	if s == nil {
		return
	}
	if !knownParams(w, r, "invalid_filter", "workspace") {
		return
	}
	list, err := s.ListProviderKeys(r.Context(), r.URL.Query().Get("workspace"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": list})
}

func (h *keysAPI) setProvider(w http.ResponseWriter, r *http.Request) {
	s := h.store(w)
	if s == nil {
		return
	}
	var req ProviderKeyRequest
	if !decodeBody(w, r, &req, false) {
		return
	}
	ws, prov := r.PathValue("workspace"), r.PathValue("provider")
	cfg := h.ks.Config()
	switch {
	case !slices.ContainsFunc(cfg.Workspaces, func(x config.Workspace) bool { return x.Name == ws }):
		h.fail(w, r, &keys.InvalidError{Field: "workspace", Msg: "unknown workspace " + quote(ws)})
		return
	case !slices.ContainsFunc(cfg.Providers, func(x config.Provider) bool { return x.Name == prov }):
		h.fail(w, r, &keys.InvalidError{Field: "provider", Msg: "unknown provider " + quote(prov)})
		return
	}
	secret := []byte(strings.TrimSpace(req.Secret))
	req.Secret = ""
	err := s.SetProviderKey(r.Context(), ws, prov, secret, by(r))
	clear(secret)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("provider key stored", zap.String("workspace", ws), zap.String("provider", prov), zap.String("by", by(r)))
	h.changed(r, audit.KindProviderKey, ws, "set", ws+"/"+prov, nil)
	list, err := s.ListProviderKeys(r.Context(), ws)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	for _, p := range list {
		if p.Provider == prov {
			writeJSON(w, http.StatusOK, p)
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *keysAPI) deleteProvider(w http.ResponseWriter, r *http.Request) {
	s := h.store(w)
	if s == nil {
		return
	}
	ws, prov := r.PathValue("workspace"), r.PathValue("provider")
	if err := s.DeleteProviderKey(r.Context(), ws, prov); err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("provider key deleted", zap.String("workspace", ws), zap.String("provider", prov), zap.String("by", by(r)))
	h.changed(r, audit.KindProviderKey, ws, "delete", ws+"/"+prov, nil)
	w.WriteHeader(http.StatusNoContent)
}

func (h *keysAPI) rotateMaster(w http.ResponseWriter, r *http.Request) {
	s := h.store(w)
	if s == nil {
		return
	}
	n, err := s.RotateMaster(r.Context(), by(r))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("provider keys re-encrypted", zap.Int("records", n), zap.String("by", by(r)))
	h.changed(r, audit.KindProviderKey, "", "rotate_master", "", map[string]string{"records": strconv.Itoa(n)})
	writeJSON(w, http.StatusOK, map[string]int{"reencrypted": n})
}

func quote(s string) string { return fmt.Sprintf("%q", apierr.Truncate(s, 64)) }

// decodeBody reads a JSON body strictly (unknown fields are errors);
// optional admits an empty body.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, optional bool) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxAdminBody+1))
	switch {
	case err != nil:
		writeError(w, apierr.Invalid("invalid_request_body", "", "cannot read the request body"))
		return false
	case len(body) > maxAdminBody:
		writeError(w, &apierr.Error{Kind: apierr.KindTooLarge, Type: "invalid_request_error", Code: "request_too_large",
			Message: fmt.Sprintf("request body exceeds the limit of %d bytes", maxAdminBody)})
		return false
	case len(strings.TrimSpace(string(body))) == 0 && optional:
		return true
	}
	// A key twice (or in two cases: Go's decoder below matches fields
	// without regard to case and keeps the last) would be read one way
	// here and may be shown another: refused as on the request path.
	if err := request.CheckBody(body, "admin"); err != nil {
		if e := apierr.As(err); e != nil && e.Code == "duplicate_field" {
			writeError(w, e)
			return false
		}
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		msg := "the request body is not valid JSON for this endpoint"
		var ute *json.UnmarshalTypeError
		param := ""
		switch {
		case errors.As(err, &ute) && ute.Field != "":
			param = strings.TrimPrefix(ute.Field, "Spec.") // the embedded spec's fields are top-level
			msg = fmt.Sprintf("%s has the wrong type", param)
		case errors.As(err, &ute):
			msg = "the request body must be a JSON object"
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			param = field
			msg = fmt.Sprintf("unknown field %q", apierr.Truncate(field, 64))
		case strings.Contains(err.Error(), "parsing time"):
			param = "expires_at"
			msg = "expires_at must be an RFC 3339 time, e.g. 2026-12-31T23:59:59Z"
		}
		writeError(w, apierr.Invalid("invalid_request_body", param, "%s", msg))
		return false
	}
	return true
}

// failKey answers an error of a verb on the key named by the path: one of
// stellwerk.yaml's keys is not in the store, and the answer says so rather
// than that there is no such key.
func (h *keysAPI) failKey(w http.ResponseWriter, r *http.Request, err error) {
	h.fail(w, r, keys.OrConfigKey(err, h.ks.Config(), r.PathValue("id")))
}

// fail answers an error of the key store in the OpenAI error shape.
func (h *keysAPI) fail(w http.ResponseWriter, r *http.Request, err error) {
	writeError(w, KeyError(err))
	if e := KeyError(err); apierr.ServerSide(e) {
		h.log.Warn("key store request failed", zap.String("path", r.URL.Path), zap.Int("status", apierr.HTTPStatus(e)), zap.Error(err))
	}
}

// KeyError maps a key store error to the answer a caller sees. Internal
// details (a database message) never reach the caller.
func KeyError(err error) *apierr.Error {
	var inv *keys.InvalidError
	switch {
	case errors.As(err, &inv):
		return apierr.Invalid("invalid_key_spec", inv.Field, "%s", inv.Error())
	case errors.Is(err, keys.ErrConfigKey):
		return apierr.Conflict("config_key", "id", "%s", err.Error())
	case errors.Is(err, keys.ErrNotFound):
		return apierr.NotFound("key_not_found", "id", "no key with this id")
	case errors.Is(err, keys.ErrExists):
		return apierr.Conflict("key_exists", "id", "a key with this id exists")
	case errors.Is(err, keys.ErrRevoked):
		return apierr.Conflict("key_revoked", "id", "the key is revoked; create a new one")
	case errors.Is(err, keys.ErrNoProviderKey):
		return apierr.NotFound("provider_key_not_found", "", "this workspace has no key for this provider")
	case errors.Is(err, keys.ErrNoMasterKey), errors.Is(err, keys.ErrMasterKeyMissing):
		return apierr.Unavailable("master_key_unavailable", "provider keys need state.master_keys (docs/keys.md); "+
			"a record may also name a master key that is no longer configured")
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		e := apierr.Unavailable("key_store_unavailable", "the key store is unavailable; the change was not made, try again")
		e.RetryAfter = 1
		return e
	}
	return apierr.Internal()
}
