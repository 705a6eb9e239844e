package admin

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/audit"
	"github.com/stellwerk/stellwerk/internal/config"
	"github.com/stellwerk/stellwerk/internal/flow"
	"github.com/stellwerk/stellwerk/internal/flowstore"
	"github.com/stellwerk/stellwerk/internal/store"
)

// RouteService is what /admin/routes needs of the server: the route
// version store and what versions compile against (the config in force).
type RouteService interface {
	Routes() *flowstore.Store
	RouteEnv() *flow.Env
	// RoutesChanged reads the route store again into the replica's
	// table, so that a deploy answered here is what this replica routes
	// by next (the next request got 404 route_not_found for ~0.3 s: the
	// operator probe).
	RoutesChanged(ctx context.Context) error
}

// routeWriters may create route versions, deploy and roll back.
var routeWriters = []string{config.RoleOperator, config.RoleAdmin}

// CreateRouteRequest is the body of POST /admin/routes: the route document
// (YAML or JSON text), a message, and whether to deploy it at once.
type CreateRouteRequest struct {
	Document string `json:"document"`
	Message  string `json:"message,omitempty"`
	Deploy   bool   `json:"deploy,omitempty"`
}

// DeployRouteRequest is the body of POST /admin/routes/{name}/deploy
// (version required) and …/rollback (version optional: the one before the
// live one). Message says why; it is kept on the change's audit record
// (detail "message", at most audit.MaxRouteMessage bytes).
type DeployRouteRequest struct {
	Version int64  `json:"version,omitempty"`
	Message string `json:"message,omitempty"`
}

// RouteView is GET /admin/routes/{name}: the route, its versions (newest
// first, without documents) and its deploys (newest first).
type RouteView struct {
	flowstore.Route
	VersionList []flowstore.Version `json:"versions"`
	Deploys     []flowstore.Deploy  `json:"deploys"`
	// Traffic is what this replica answered per version and split arm
	// since it started: requests, errors, cost and latency.
	Traffic []flow.CounterRow `json:"traffic"`
}

// RouteTraffic is implemented by a RouteService that counts the answers
// of routes (the server; not the CLI).
type RouteTraffic interface {
	RouteCounters() *flow.Counters
}

// CreatedRoute answers POST /admin/routes.
type CreatedRoute struct {
	Version flowstore.Version `json:"version"`
	// Created is false when the document was already a version.
	Created  bool              `json:"created"`
	Deployed *flowstore.Deploy `json:"deployed,omitempty"`
}

func registerRoutes(guarded func(string, []string, http.HandlerFunc), rs RouteService, log *zap.Logger) {
	h := &routesAPI{rs: rs, log: log}
	h.rec, _ = rs.(ChangeRecorder)
	guarded("GET /admin/routes", readers, h.list)
	guarded("POST /admin/routes", routeWriters, h.create)
	guarded("GET /admin/routes/{name}", readers, h.show)
	guarded("GET /admin/routes/{name}/versions/{version}", readers, h.version)
	guarded("POST /admin/routes/{name}/deploy", routeWriters, h.deploy)
	guarded("POST /admin/routes/{name}/rollback", routeWriters, h.rollback)
}

type routesAPI struct {
	rs  RouteService
	log *zap.Logger
	rec ChangeRecorder // nil: no audit log
}

// changed puts a route change on the audit record, with the admin token
// that made it.
func (h *routesAPI) changed(r *http.Request, d audit.RouteSwitch) {
	if h.rec != nil {
		h.rec.RecordChange(audit.KindRoute, "", audit.RouteChange(by(r), d))
	}
}

func (h *routesAPI) store(w http.ResponseWriter) *flowstore.Store {
	s := h.rs.Routes()
	if s == nil {
		writeError(w, apierr.Unavailable("route_store_unavailable", "this server has no route store"))
	}
	return s
}

func (h *routesAPI) list(w http.ResponseWriter, r *http.Request) {
	s := h.store(w)
	if s == nil {
		return
	}
	rs, err := s.Routes(r.Context())
	if err == nil {
		err = s.CheckLoads(r.Context(), h.rs.RouteEnv(), rs)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": rs})
}

func (h *routesAPI) show(w http.ResponseWriter, r *http.Request) {
	s := h.store(w)
	if s == nil {
		return
	}
	ctx, name := r.Context(), r.PathValue("name")
	rt, err := s.Route(ctx, name)
	var vs []flowstore.Version
	var ds []flowstore.Deploy
	if err == nil {
		one := []flowstore.Route{rt}
		err = s.CheckLoads(ctx, h.rs.RouteEnv(), one)
		rt = one[0]
	}
	if err == nil {
		vs, err = s.Versions(ctx, name)
	}
	if err == nil {
		ds, err = s.History(ctx, name)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	view := RouteView{Route: rt, VersionList: vs, Deploys: ds, Traffic: []flow.CounterRow{}}
	if rt, ok := h.rs.(RouteTraffic); ok && rt.RouteCounters() != nil {
		for _, row := range rt.RouteCounters().Snapshot() {
			if row.Route == name {
				view.Traffic = append(view.Traffic, row)
			}
		}
	}
	writeJSON(w, http.StatusOK, view)
}

// version shows one version with its document; "live" names the live one.
func (h *routesAPI) version(w http.ResponseWriter, r *http.Request) {
	s := h.store(w)
	if s == nil {
		return
	}
	var n int64
	if p := r.PathValue("version"); p != "live" {
		var err error
		if n, err = strconv.ParseInt(p, 10, 64); err != nil || n < 1 {
			writeError(w, apierr.Invalid("invalid_version", "version", "a version is a number from 1, or live"))
			return
		}
	}
	v, err := s.Get(r.Context(), r.PathValue("name"), n)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (h *routesAPI) create(w http.ResponseWriter, r *http.Request) {
	s := h.store(w)
	if s == nil {
		return
	}
	var req CreateRouteRequest
	if !decodeBody(w, r, &req, false) {
		return
	}
	if strings.TrimSpace(req.Document) == "" {
		writeError(w, apierr.Invalid("invalid_route", "document", "document is required: the route's YAML or JSON text"))
		return
	}
	f, err := flow.LoadNew("document", []byte(req.Document), h.rs.RouteEnv())
	if err != nil {
		writeError(w, RouteLoadError(err))
		return
	}
	ctx, who := r.Context(), by(r)
	v, created, err := s.Create(ctx, f, who, req.Message, "api")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := CreatedRoute{Version: v, Created: created}
	if created {
		h.changed(r, audit.RouteSwitch{Route: v.Route, Action: "create", To: v.Version, Message: req.Message})
	}
	if req.Deploy {
		d, err := s.Deploy(ctx, v.Route, v.Version, who)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		out.Deployed, out.Version.Live = &d, true
		h.changed(r, audit.RouteSwitch{Route: d.Route, Action: d.Action, From: d.From, To: d.To, Message: req.Message})
		h.refresh(r)
	}
	h.log.Info("route version stored", zap.String("route", v.Route), zap.Int64("version", v.Version), zap.Bool("created", created),
		zap.Bool("deployed", req.Deploy), zap.String("by", who))
	status := http.StatusCreated
	if !created {
		status = http.StatusOK
	}
	out.Version.Document = ""
	writeJSON(w, status, out)
}

func (h *routesAPI) deploy(w http.ResponseWriter, r *http.Request) {
	h.switchTo(w, r, false)
}

func (h *routesAPI) rollback(w http.ResponseWriter, r *http.Request) {
	h.switchTo(w, r, true)
}

func (h *routesAPI) switchTo(w http.ResponseWriter, r *http.Request, rollback bool) {
	s := h.store(w)
	if s == nil {
		return
	}
	var req DeployRouteRequest
	if !decodeBody(w, r, &req, rollback) {
		return
	}
	ctx, name, who := r.Context(), r.PathValue("name"), by(r)
	if !rollback && req.Version < 1 {
		writeError(w, apierr.Invalid("invalid_version", "version", "version is required: the version to deploy"))
		return
	}
	// A version must load under the config in force before it goes live
	// (a rollback without one skips those that do not: Store.Rollback).
	if req.Version > 0 {
		v, err := s.Get(ctx, name, req.Version)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		if _, err := flow.Load(name+"@"+strconv.FormatInt(v.Version, 10), []byte(v.Document), h.rs.RouteEnv()); err != nil {
			writeError(w, RouteLoadError(err))
			return
		}
	}
	var d flowstore.Deploy
	var err error
	if rollback {
		d, err = s.Rollback(ctx, name, req.Version, who, flowstore.Loads(h.rs.RouteEnv()))
	} else {
		d, err = s.Deploy(ctx, name, req.Version, who)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("route deployed", zap.String("route", name), zap.String("action", d.Action), zap.Int64("from", d.From),
		zap.Int64("to", d.To), zap.String("by", who), zap.String("reason", d.Reason))
	h.changed(r, audit.RouteSwitch{Route: d.Route, Action: d.Action, From: d.From, To: d.To, Message: req.Message})
	h.refresh(r)
	writeJSON(w, http.StatusOK, d)
}

// refresh brings this replica's route table up to a deploy just written;
// one that fails is logged (the table's own refresh retries it).
func (h *routesAPI) refresh(r *http.Request) {
	if err := h.rs.RoutesChanged(r.Context()); err != nil {
		h.log.Warn("the route table was not refreshed after a deploy; it will be within state.refresh_interval", zap.Error(err))
	}
}

func (h *routesAPI) fail(w http.ResponseWriter, r *http.Request, err error) {
	e := RouteError(err)
	writeError(w, e)
	if apierr.ServerSide(e) {
		h.log.Warn("route store request failed", zap.String("path", r.URL.Path), zap.Int("status", apierr.HTTPStatus(e)), zap.Error(err))
	}
}

// RouteLoadError is the 400 for a document that does not load: every
// problem, each with its node and position.
func RouteLoadError(err error) *apierr.Error {
	errs := flow.Errors(err)
	msgs := make([]string, 0, len(errs))
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	return apierr.Invalid("invalid_route", "document", "%s", apierr.Truncate(strings.Join(msgs, "\n"), 4096))
}

// RouteError maps a route store error to the answer a caller sees.
func RouteError(err error) *apierr.Error {
	var none *flowstore.NoneLoadsError
	switch {
	case errors.Is(err, flowstore.ErrNoRoute):
		return apierr.NotFound("route_not_found", "name", "no route with this name")
	case errors.Is(err, flowstore.ErrNoVersion):
		return apierr.NotFound("route_version_not_found", "version", "the route has no such version")
	case errors.Is(err, flowstore.ErrNotDeployed):
		return apierr.Conflict("route_not_deployed", "", "the route has no live version; deploy one")
	case errors.As(err, &none):
		return apierr.Invalid("invalid_route", "version", "%s", apierr.Truncate(none.Error(), 4096))
	case errors.Is(err, flowstore.ErrNoEarlier):
		return apierr.Conflict("no_earlier_version", "version", "%s", apierr.Truncate(err.Error(), 256))
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		e := apierr.Unavailable("route_store_unavailable", "the route store is unavailable; nothing was changed, try again")
		e.RetryAfter = 1
		return e
	}
	return apierr.Internal()
}
