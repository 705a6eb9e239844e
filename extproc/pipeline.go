package extproc

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3conf "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/stellwerk/stellwerk/internal/apierr"
)

// The edge in Envoy's pipelined mode (docs/benchmarks.md, issue 12).
//
// In the classic mode Envoy waits for each answer before it sends the next
// message: request headers, then the buffered body, then the response
// headers, then (for a JSON answer) its buffered body: four round trips in
// a row. In the pipelined mode the edge filter streams both bodies
// (STREAMED) and sends them without waiting for the headers' answer
// (send_body_without_waiting_for_header_response). stellwerk then holds its
// answer to the request headers until the whole body is in, decides, and
// sends every held answer at once: the headers' answer carries the
// decision's header mutations (and the cluster), the first body chunk's
// answer the rewritten body, the others clear theirs. The response side is
// the same: the headers are answered at once, a JSON answer's chunks are
// held until its end and the routing object goes into the first. A
// request costs Envoy one round trip each way, overlapping with the
// transfer of the bodies.
//
// Envoy ignores mode overrides in this mode, so what the classic mode asks
// for per answer (a buffered JSON body, a followed stream, nothing) is done
// here: the edge's phase methods are called exactly as in the classic mode,
// and pipeline translates their answers. Which mode a stream is in comes
// from the first message's protocol_config, so an operator's Envoy with the
// classic drop-in configuration keeps working.

// pipelined reports whether Envoy streams this request in the pipelined mode.
func pipelined(req *extprocv3.ProcessingRequest) bool {
	pc := req.GetProtocolConfig()
	return pc.GetSendBodyWithoutWaitingForHeaderResponse() &&
		pc.GetRequestBodyMode() == extprocv3conf.ProcessingMode_STREAMED &&
		pc.GetResponseBodyMode() == extprocv3conf.ProcessingMode_STREAMED
}

// respMode is what the pipeline does with an answer's body chunks.
type respMode uint8

const (
	respPass   respMode = iota // pass every chunk unchanged, without the edge
	respStream                 // each chunk to the edge (a followed SSE stream)
	respBuffer                 // hold the chunks; the edge gets the whole body
)

// uploadGrace is how long Envoy waits for the held request headers' answer
// once the body has taken half the message timeout to arrive without
// ending: stellwerk extends that message's timeout to it, once.
const uploadGrace = 60 * time.Second

type pipeline struct {
	p    *edge
	done bool // an immediate answer went out: the stream is over for Envoy

	held      *extprocv3.ProcessingResponse // the request headers' answer
	reqChunks int
	reqBody   []byte
	decided   bool                    // the request body was complete and answered
	after     *extprocv3.BodyMutation // what a chunk after that gets (cleared when the body changed)

	json jsonEnd // where the JSON value of a body without a content-length ends

	resp      respMode
	respLimit int // a held answer larger than this is passed through as is
	respN     int // held chunks
	respBody  []byte
}

// step answers one message: nothing while it holds, several answers when it
// releases what it held.
func (q *pipeline) step(req *extprocv3.ProcessingRequest, out []*extprocv3.ProcessingResponse) []*extprocv3.ProcessingResponse {
	p := q.p
	switch r := req.Request.(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		resp := p.handle(req)
		if resp.GetImmediateResponse() != nil || r.RequestHeaders.GetEndOfStream() {
			return append(out, resp)
		}
		q.held = resp
		return out
	case *extprocv3.ProcessingRequest_RequestBody:
		if q.decided {
			// The body was complete at its declared length, or at the end of
			// its JSON value; only Envoy's end-of-stream message may follow,
			// without data.
			if chunk := r.RequestBody.GetBody(); len(chunk) > 0 {
				if p.contentLength < 0 && jsonSpace(chunk) {
					// White space after the value is still JSON: a client
					// that ends its body with a newline of its own chunk
					// was refused.
					return append(out, bodyAnswer(true, q.after))
				}
				if p.contentLength < 0 {
					return append(out, p.immediate(apierr.Invalid("invalid_request_body", "", "the request body goes on after its JSON value")))
				}
				return append(out, p.immediate(apierr.Invalid("invalid_request_body", "", "the request body is longer than its content-length")))
			}
			return append(out, bodyAnswer(true, q.after))
		}
		if q.held == nil {
			return append(out, p.immediate(p.unexpected()))
		}
		q.reqChunks++
		q.reqBody = gather(q.reqBody, r.RequestBody.GetBody())
		if int64(len(q.reqBody)) > p.state.MaxRequestBytes {
			return append(out, p.immediate(apierr.TooLarge(p.state.MaxRequestBytes)))
		}
		// Complete at its end, or as soon as it has its declared length:
		// Envoy's end-of-stream message comes apart and later, and the
		// decision need not wait for it. Without a declared length, at the
		// end of its JSON value: an HTTP/2 client that ends the request
		// with trailers sends no end of stream Envoy passes on while the
		// headers' answer is held (it waited for the upload's grace, then
		// got a 503).
		if !r.RequestBody.GetEndOfStream() {
			switch {
			case p.contentLength >= 0:
				if int64(len(q.reqBody)) < p.contentLength {
					return out
				}
			case !q.json.complete(q.reqBody):
				return out
			}
		}
		q.decided = true
		resp := p.handle(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{
			RequestBody: &extprocv3.HttpBody{Body: q.reqBody, EndOfStream: true}}})
		if resp.GetImmediateResponse() != nil {
			return append(out, resp)
		}
		return q.release(resp, out)
	case *extprocv3.ProcessingRequest_RequestTrailers:
		// An HTTP/2 client may end its request with trailers. Envoy,
		// skipping them, sent the rewritten body to the provider twice (the
		// HTTP red team): on a pooled HTTP/1 connection the copy broke the
		// next request, another tenant's, and HTTP/2 providers reset the
		// stream, which cooled them down for everyone. So Envoy sends them
		// here (request_trailer_mode SEND), and the request is refused
		// before Envoy goes on with it: the provider's connection is reset
		// with it, never reused. No OpenAI or Anthropic client sends any.
		return append(out, p.immediate(apierr.Invalid("unsupported_trailers", "", "request trailers are not supported; send the request without them")))
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		resp := p.handle(req)
		if resp.GetImmediateResponse() != nil {
			return append(out, resp)
		}
		q.resp = respPass
		switch resp.GetModeOverride().GetResponseBodyMode() {
		case extprocv3conf.ProcessingMode_STREAMED:
			q.resp = respStream
		case extprocv3conf.ProcessingMode_BUFFERED_PARTIAL, extprocv3conf.ProcessingMode_BUFFERED:
			q.resp = respBuffer
			// The body the client gets is the one the edge writes.
			if hm := resp.GetResponseHeaders().GetResponse().GetHeaderMutation(); hm != nil {
				hm.RemoveHeaders = append(hm.RemoveHeaders, "content-length")
			}
		}
		resp.ModeOverride = nil
		return append(out, resp)
	case *extprocv3.ProcessingRequest_ResponseBody:
		b := r.ResponseBody
		switch q.resp {
		case respStream:
			resp := p.handle(req)
			if resp.GetImmediateResponse() == nil {
				bodyOnly(resp)
			}
			return append(out, resp)
		case respBuffer:
			q.respN++
			q.respBody = gather(q.respBody, b.GetBody())
			if !b.GetEndOfStream() {
				if len(q.respBody) <= q.respLimit {
					return out
				}
				// Too large to hold: the edge sees a partial body, as with
				// Envoy's BUFFERED_PARTIAL, and everything passes unchanged.
				p.handle(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{
					ResponseBody: &extprocv3.HttpBody{Body: q.respBody}}})
				for range q.respN {
					out = append(out, continueResponseBody())
				}
				q.resp, q.respN, q.respBody = respPass, 0, nil
				return out
			}
			resp := p.handle(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{
				ResponseBody: &extprocv3.HttpBody{Body: q.respBody, EndOfStream: true}}})
			if resp.GetImmediateResponse() != nil {
				return append(out, resp)
			}
			bm := resp.GetResponseBody().GetResponse().GetBodyMutation()
			out = append(out, bodyAnswer(false, bm))
			for range q.respN - 1 {
				out = append(out, bodyAnswer(false, clearedBody(bm)))
			}
			q.respN, q.respBody = 0, nil
			return out
		}
		return append(out, continueResponseBody())
	}
	if resp := trailers(req); resp != nil {
		return append(out, resp)
	}
	return append(out, p.immediate(p.unexpected()))
}

// release answers the held request headers and every body chunk once the
// edge decided: the headers' answer takes the decision's header mutations,
// the routing metadata and the body's exact length; the first chunk's
// answer the body as it must go out, the others clear theirs.
func (q *pipeline) release(resp *extprocv3.ProcessingResponse, out []*extprocv3.ProcessingResponse) []*extprocv3.ProcessingResponse {
	cr := resp.GetRequestBody().GetResponse()
	hm := q.held.GetRequestHeaders().GetResponse().GetHeaderMutation()
	merged := &extprocv3.HeaderMutation{}
	n := len(q.reqBody)
	if bm := cr.GetBodyMutation(); bm != nil {
		n = len(bm.GetBody())
	}
	// The headers' own (accept-encoding), then the decision's.
	held0, src := hm.GetSetHeaders(), cr.GetHeaderMutation().GetSetHeaders()
	set := make([]*corev3.HeaderValueOption, 0, len(held0)+len(src)+1)
	for _, list := range [2][]*corev3.HeaderValueOption{held0, src} {
		for _, h := range list {
			if h.GetHeader().GetKey() != "content-length" {
				set = append(set, h)
			}
		}
	}
	merged.SetHeaders = append(set, setHeader("content-length", strconv.Itoa(n)))
	// A header the decision sets is not removed too, whichever order Envoy
	// applies the two lists in.
	held, decided := hm.GetRemoveHeaders(), cr.GetHeaderMutation().GetRemoveHeaders()
	merged.RemoveHeaders = make([]string, 0, len(held)+len(decided))
	for _, list := range [2][]string{held, decided} {
		for _, k := range list {
			if !slices.ContainsFunc(merged.SetHeaders, func(h *corev3.HeaderValueOption) bool { return strings.EqualFold(h.GetHeader().GetKey(), k) }) {
				merged.RemoveHeaders = append(merged.RemoveHeaders, k)
			}
		}
	}
	answer := continueRequestHeaders(merged, true)
	answer.DynamicMetadata = resp.DynamicMetadata
	out = append(out, answer)
	bm := cr.GetBodyMutation()
	q.after = clearedBody(bm)
	out = append(out, bodyAnswer(true, bm))
	for range q.reqChunks - 1 {
		out = append(out, bodyAnswer(true, q.after))
	}
	q.held, q.reqBody = nil, nil
	return out
}

// gather appends a chunk to what was held; the first chunk is kept as it
// came (the message is not used again), so a body in one chunk is not copied.
func gather(held, chunk []byte) []byte {
	if held == nil {
		return chunk
	}
	return append(held, chunk...)
}

var clearBody = &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_ClearBody{ClearBody: true}}

// clearedBody is the mutation of every chunk after the first: cleared when
// the first carries the whole new body, none when nothing changed.
func clearedBody(first *extprocv3.BodyMutation) *extprocv3.BodyMutation {
	if first == nil {
		return nil
	}
	return clearBody
}

func bodyAnswer(request bool, bm *extprocv3.BodyMutation) *extprocv3.ProcessingResponse {
	a := new(bodyAnswerAlloc)
	if bm != nil {
		a.cr.BodyMutation = bm
		a.br.Response = &a.cr
	}
	if request {
		a.req.RequestBody = &a.br
		a.pr.Response = &a.req
	} else {
		a.resp.ResponseBody = &a.br
		a.pr.Response = &a.resp
	}
	return &a.pr
}

// bodyAnswerAlloc is bodyAnswer's one allocation (the answer's four
// messages were four).
type bodyAnswerAlloc struct {
	pr   extprocv3.ProcessingResponse
	req  extprocv3.ProcessingResponse_RequestBody
	resp extprocv3.ProcessingResponse_ResponseBody
	br   extprocv3.BodyResponse
	cr   extprocv3.CommonResponse
}

// bodyOnly drops header mutations from a streamed chunk's answer: the
// headers went to the client already.
func bodyOnly(resp *extprocv3.ProcessingResponse) {
	if cr := resp.GetResponseBody().GetResponse(); cr != nil {
		cr.HeaderMutation = nil
	}
}

// uploadWatch extends the message timeout of held request headers whose
// body is slow to arrive. Envoy's timer for the headers' answer runs while
// the client uploads, and restarts with every body chunk Envoy passes on;
// when half of it passes without the body's end, the pending message gets
// the longer uploadGrace, so a slow upload is not cut at the message
// timeout, while a request whose body arrives at once costs nothing extra.
type uploadWatch struct {
	mu      sync.Mutex // serialises sends: the timer's and the stream loop's
	stream  extprocv3.ExternalProcessor_ProcessServer
	holding atomic.Bool // the headers' answer is held: extend may send
	timer   *time.Timer
	// until is when extensions stop (the stream's start plus the upload
	// limit): a body still arriving then is cut by Envoy's timeout.
	until time.Time
}

// hold starts the watch, or restarts it: a message came while the
// headers' answer was held, and Envoy restarted its timer for it.
func (w *uploadWatch) hold(after time.Duration) {
	w.holding.Store(true)
	if w.timer == nil {
		w.timer = time.AfterFunc(after, w.extend)
	} else {
		w.timer.Reset(after)
	}
}

func (w *uploadWatch) extend() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.holding.Load() && time.Now().Before(w.until) {
		// An error means the stream is over: nothing is waiting any more.
		_ = w.stream.Send(&extprocv3.ProcessingResponse{OverrideMessageTimeout: durationpb.New(uploadGrace)})
	}
}

// stop ends the watch as the stream handler returns: an extend already
// running finishes its send first, and none sends after (grpc-go forbids a
// Send once the handler has returned; a helper's finding: a client that
// abandoned a slow upload left holding set).
func (w *uploadWatch) stop() {
	if w.timer != nil {
		w.timer.Stop()
	}
	w.mu.Lock()
	w.holding.Store(false)
	w.mu.Unlock()
}

// serveEdge answers an edge stream in whichever mode Envoy sends it.
func serveEdge(ctx context.Context, stream extprocv3.ExternalProcessor_ProcessServer, p *edge) error {
	var q *pipeline
	var out []*extprocv3.ProcessingResponse
	w := &uploadWatch{stream: stream, until: time.Now().Add(p.state.uploadLimit())}
	defer w.stop()
	first := true
	for {
		req, err := recv(ctx, stream)
		if req == nil {
			return err
		}
		if first {
			first = false
			if pipelined(req) {
				limit := int(p.state.MaxRequestBytes)
				q = &pipeline{p: p, respLimit: limit}
			}
		}
		if q != nil {
			// Envoy restarted its timer for this message: no grace while
			// it is handled. Handling the body's end is the decision,
			// which Envoy's message timeout bounds (envoy.extproc_timeout);
			// the grace is for uploads only (a slow policy was given 60 s).
			w.holding.Store(false)
		}
		if q == nil {
			out = append(out[:0], safeHandle(&p.filter, req, p.handle, p.immediate))
		} else {
			if q.done {
				continue
			}
			out = q.safeStep(req, out[:0])
		}
		w.mu.Lock()
		if q != nil && q.held != nil {
			w.hold(p.state.messageTimeout() / 2)
		}
		if q != nil && q.held == nil {
			w.holding.Store(false)
		}
		for _, resp := range out {
			if resp.GetImmediateResponse() != nil && q != nil {
				q.done = true
				w.holding.Store(false)
			}
			if err := stream.Send(resp); err != nil {
				w.mu.Unlock()
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
		}
		w.mu.Unlock()
		p.afterSend()
	}
}

// safeStep is step with a panic turned into a 500 for this request only.
func (q *pipeline) safeStep(req *extprocv3.ProcessingRequest, out []*extprocv3.ProcessingResponse) []*extprocv3.ProcessingResponse {
	return recovered(&q.p.filter, func() []*extprocv3.ProcessingResponse { return q.step(req, out) },
		func() []*extprocv3.ProcessingResponse { return append(out[:0], q.p.immediate(apierr.Internal())) })
}

// jsonEnd follows a request body chunk by chunk to the end of its JSON
// value: each byte is read once, whatever the chunks.
type jsonEnd struct {
	read     int // bytes of the body read so far
	depth    int // open objects and arrays
	inString bool
	escaped  bool
	done     bool
}

// jsonSpace reports whether b is only JSON's white space.
func jsonSpace(b []byte) bool {
	for _, c := range b {
		if !isJSONSpace(c) {
			return false
		}
	}
	return true
}

// complete reads what body has more than before and reports whether its
// JSON object or array is closed, with only white space after it.
func (j *jsonEnd) complete(body []byte) bool {
	for ; j.read < len(body); j.read++ {
		c := body[j.read]
		switch {
		case j.done:
			if !isJSONSpace(c) {
				return false // not the end: the decision reads the rest
			}
		case j.inString:
			switch {
			case j.escaped:
				j.escaped = false
			case c == '\\':
				j.escaped = true
			case c == '"':
				j.inString = false
			}
		case c == '"':
			j.inString = true
		case c == '{' || c == '[':
			j.depth++
		case c == '}' || c == ']':
			if j.depth--; j.depth == 0 {
				j.done = true
			}
		}
	}
	return j.done && j.depth == 0
}
