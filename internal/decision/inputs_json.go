package decision

import "github.com/stellwerk/stellwerk/internal/jsonw"

// AppendJSON writes the inputs as encoding/json does (jsonw.Appender), for
// the audit record: every decision's record carries them, and
// encoding/json's reflection over their maps (a learned latency for each of
// the catalog's models, sorted) was most of what the record's encoding
// cost. The classification writes itself too (classify.Result.AppendJSON);
// the budgets, rare, still go through encoding/json. TestInputsJSON holds
// the two to the same bytes for randomly filled inputs.
func (in *Inputs) AppendJSON(dst []byte) ([]byte, error) {
	return in.appendJSON(dst)
}

// MarshalJSON is AppendJSON for encoding/json, which cannot see the
// learned latencies of a live decision (Inputs.live).
func (in *Inputs) MarshalJSON() ([]byte, error) { return in.appendJSON(nil) }

func (in *Inputs) appendJSON(dst []byte) ([]byte, error) {
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
	e.BoolOmit("logprobs", in.Logprobs)
	e.BoolOmit("functions", in.Functions)
	e.StrOmit("openai_wire_only", in.OpenAIWireOnly)
	e.IntOmit("largest_input", int64(in.LargestInput))
	e.BoolOmit("audio", in.Audio)
	e.BoolOmit("files", in.Files)
	e.BoolOmit("file_by_id", in.FileByID)
	e.IntOmit("images", int64(in.Images))
	e.IntOmit("pdf_pages", int64(in.PDFPages))
	e.BoolOmit("pdf_uncounted", in.PDFUncounted)
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
	if in.live.idx != nil {
		in.live.appendJSON(&e)
	} else {
		e.IntMapOmit("latency_ms", in.LatencyMS)
	}
	e.StrOmit("latency_from", in.LatencyFrom)
	e.FloatMapOmit("quality", in.Quality)
	if len(in.Budgets) > 0 {
		e.Value("budgets", in.Budgets)
	}
	e.Close(o)
	return e.B, e.Err
}

// appendJSON writes the learned latencies as IntMapOmit writes the map a
// decoded record has: the models whose latency was not their seed, by id;
// nothing when there are none.
func (l *liveLatency) appendJSON(e *jsonw.Encoder) {
	outer, opened := false, false
	for _, i := range l.idx.sorted {
		v := l.ms[i]
		if v < 0 {
			continue
		}
		if !opened {
			e.Key("latency_ms")
			outer, opened = e.Open(), true
		}
		e.RawKey(l.idx.keys[i])
		e.B = jsonw.AppendInt(e.B, int64(v))
	}
	if opened {
		e.Close(outer)
	}
}
