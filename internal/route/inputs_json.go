package route

import "github.com/stellwerk/stellwerk/internal/jsonw"

// AppendJSON writes the inputs as encoding/json does (jsonw.Appender), for
// the audit record: every decision's record carries them, and
// encoding/json's reflection over their maps (a learned latency for each of
// the catalog's models, sorted) was most of what the record's encoding
// cost. The classification and the budgets, nested types read rarely
// enough, still go through encoding/json. TestInputsJSON holds the two to
// the same bytes for randomly filled inputs.
func (in *Inputs) AppendJSON(dst []byte) ([]byte, error) {
	if in == nil {
		return append(dst, "null"...), nil
	}
	e := jsonw.Encoder{B: dst}
	o := e.Open()
	e.Int("v", int64(in.V))
	e.Str("decision_id", in.DecisionID)
	e.Str("path", in.Path)
	e.Str("model", in.Model)
	e.BoolOmit("stream", in.Stream)
	e.IntOmit("max_tokens", int64(in.MaxTokens))
	e.IntOmit("n", int64(in.Choices))
	e.Int("messages", int64(in.Messages))
	e.BoolOmit("tools", in.Tools)
	e.StrOmit("response_format", in.ResponseFormat)
	e.BoolOmit("vision", in.Vision)
	e.StrOmit("user", in.User)
	e.StringMapOmit("metadata", in.Metadata)
	e.StringMapOmit("headers", in.Headers)
	e.StrOmit("native_only", in.NativeOnly)
	e.BoolOmit("stored", in.Stored)
	e.StrOmit("policy", in.Policy)
	p := &in.Principal
	e.Key("principal")
	po := e.Open()
	e.Bool("authenticated", p.Authenticated)
	e.StrOmit("key_id", p.KeyID)
	e.Str("workspace", p.Workspace)
	e.StrOmit("team", p.Team)
	e.StrOmit("user", p.User)
	e.StrsOmit("roles", p.Roles)
	e.StrsOmit("models", p.Models)
	e.StrsOmit("routes", p.Routes)
	e.Close(po)
	e.Value("classification", &in.Classification)
	e.IntOmit("route_version", in.RouteVersion)
	e.StringMapOmit("route_limits", in.RouteLimits)
	e.Time("now", in.Now)
	e.StrsOmit("cooling", in.Cooling)
	e.StrsOmit("cooling_models", in.CoolingModels)
	e.StrsOmit("no_credential", in.NoCredential)
	e.IntMapOmit("latency_ms", in.LatencyMS)
	e.FloatMapOmit("quality", in.Quality)
	if len(in.Budgets) > 0 {
		e.Value("budgets", in.Budgets)
	}
	e.Close(o)
	return e.B, e.Err
}
