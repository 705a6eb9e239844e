package extproc

import (
	"strconv"
	"unsafe"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/header"
)

// setHeader is a header mutation that replaces any existing value. The
// option and its header are one allocation, and the value's bytes are the
// string's own: an answer is only read (marshalled) once built, and a
// request sets about sixteen headers.
func setHeader(name, value string) *corev3.HeaderValueOption {
	h := new(headerOption)
	h.val.Key, h.val.RawValue = name, unsafe.Slice(unsafe.StringData(value), len(value))
	h.opt.Header, h.opt.AppendAction = &h.val, corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
	return &h.opt
}

// headerOption is setHeader's allocation.
type headerOption struct {
	opt corev3.HeaderValueOption
	val corev3.HeaderValue
}

// metadataValues hands out the dynamic metadata of one answer from one
// allocation: a routed request's plan, path, model and per-attempt
// providers are about a dozen Values and Structs, one or two allocations
// each when made one by one. Past its arrays (a failover longer than the
// default) it allocates as structpb does.
type metadataValues struct {
	vals    [8]structpb.Value
	strs    [6]structpb.Value_StringValue
	nested  [2]structpb.Value_StructValue
	structs [3]structpb.Struct
	nv, ns  int
	nn, nst int
}

// next hands out slab[*n] and counts it, or a new T once the slab is used up.
func next[T any](slab []T, n *int) *T {
	if *n == len(slab) {
		return new(T)
	}
	*n++
	return &slab[*n-1]
}

// str is structpb.NewStringValue(v).
func (b *metadataValues) str(v string) *structpb.Value {
	val, k := next(b.vals[:], &b.nv), next(b.strs[:], &b.ns)
	k.StringValue, val.Kind = v, k
	return val
}

// object is &structpb.Struct{Fields: fields}.
func (b *metadataValues) object(fields map[string]*structpb.Value) *structpb.Struct {
	st := next(b.structs[:], &b.nst)
	st.Fields = fields
	return st
}

// nest is structpb.NewStructValue(b.object(fields)).
func (b *metadataValues) nest(fields map[string]*structpb.Value) *structpb.Value {
	val, st, k := next(b.vals[:], &b.nv), b.object(fields), next(b.nested[:], &b.nn)
	k.StructValue, val.Kind = st, k
	return val
}

// hasValue reports whether a header Envoy sent is set to something,
// without copying it.
func hasValue(h *corev3.HeaderValue) bool { return len(h.RawValue) > 0 || h.Value != "" }

// headerValue reads a header Envoy sent, which arrives in raw_value (or
// value in older Envoys).
func headerValue(h *corev3.HeaderValue) string {
	if len(h.RawValue) > 0 {
		return string(h.RawValue)
	}
	return h.Value
}

// The continue answers below are each one allocation: the response, its
// oneof wrapper and its messages in one block (an answer is built, sent and
// dropped; nothing keeps a part of it).

func continueRequestHeaders(m *extprocv3.HeaderMutation, clearRoute bool) *extprocv3.ProcessingResponse {
	b := new(struct {
		r extprocv3.ProcessingResponse
		w extprocv3.ProcessingResponse_RequestHeaders
		h extprocv3.HeadersResponse
		c extprocv3.CommonResponse
	})
	b.c.HeaderMutation, b.c.ClearRouteCache = m, clearRoute
	b.h.Response, b.w.RequestHeaders, b.r.Response = &b.c, &b.h, &b.w
	return &b.r
}

func continueRequestBody(cr *extprocv3.CommonResponse) *extprocv3.ProcessingResponse {
	b := new(struct {
		r extprocv3.ProcessingResponse
		w extprocv3.ProcessingResponse_RequestBody
		a extprocv3.BodyResponse
	})
	b.a.Response, b.w.RequestBody, b.r.Response = cr, &b.a, &b.w
	return &b.r
}

func continueResponseHeaders(m *extprocv3.HeaderMutation) *extprocv3.ProcessingResponse {
	b := new(struct {
		r extprocv3.ProcessingResponse
		w extprocv3.ProcessingResponse_ResponseHeaders
		h extprocv3.HeadersResponse
		c extprocv3.CommonResponse
	})
	b.c.HeaderMutation = m
	b.h.Response, b.w.ResponseHeaders, b.r.Response = &b.c, &b.h, &b.w
	return &b.r
}

func continueResponseBody() *extprocv3.ProcessingResponse { return bodyAnswer(false, nil) }

// immediateJSON answers the client directly; nothing goes upstream.
func immediateJSON(status int, body []byte, decisionID string, extra ...*corev3.HeaderValueOption) *extprocv3.ProcessingResponse {
	hs := append([]*corev3.HeaderValueOption{
		setHeader("content-type", "application/json"),
		setHeader(header.DecisionID, decisionID),
		setHeader(header.RequestID, decisionID),
	}, extra...)
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{
		ImmediateResponse: &extprocv3.ImmediateResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(status)},
			Headers: &extprocv3.HeaderMutation{SetHeaders: hs},
			Body:    body,
			Details: "stellwerk",
		},
	}}
}

// errorResponse answers with an OpenAI-shaped error, naming the policy
// version that decided when there is one.
func errorResponse(e *apierr.Error, decisionID, policyVersion string) *extprocv3.ProcessingResponse {
	return immediateJSON(apierr.HTTPStatus(e), e.JSON(), decisionID, errorHeaders(e, policyVersion)...)
}

// errorHeaders are an error answer's headers besides its content type and
// decision id.
func errorHeaders(e *apierr.Error, policyVersion string) []*corev3.HeaderValueOption {
	var extra []*corev3.HeaderValueOption
	if policyVersion != "" {
		extra = append(extra, setHeader(header.PolicyVersion, policyVersion))
	}
	if e.RetryAfter > 0 {
		extra = append(extra, setHeader("retry-after", strconv.Itoa(e.RetryAfter)))
	}
	if e.Final {
		extra = append(extra, setHeader("x-should-retry", "false"))
	}
	// What HTTP says a 405 and a 401 carry (RFC 9110): the methods the
	// path takes, and how to authenticate (the HTTP probe).
	if e.Allow != "" {
		extra = append(extra, setHeader("allow", e.Allow))
	}
	if e.Kind == apierr.KindUnauthenticated {
		extra = append(extra, setHeader("www-authenticate", `Bearer realm="stellwerk"`))
	}
	return extra
}
