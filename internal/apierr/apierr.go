// Package apierr is the one error shape stellwerk shows to callers: the OpenAI
// error object {"error":{"message","type","code","param"}}. The decision core
// says what went wrong with a Kind; the edges (the Envoy adapter, the admin
// API, xDS's direct responses) choose the HTTP status from it with
// HTTPStatus, as STYLE.md asks — no core package names a status.
package apierr

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Kind is what went wrong, in the caller's terms. The zero Kind is Internal,
// so an Error built without one never claims to be the caller's fault.
type Kind uint8

const (
	KindInternal         Kind = iota // stellwerk failed; nothing was sent
	KindInvalid                      // the request is malformed or refused by a rule it can fix
	KindUnauthenticated              // no key, or a key that is unknown, expired or revoked
	KindDenied                       // the key or the policy does not allow it
	KindNotFound                     // the named thing does not exist (for this caller)
	KindWrongMethod                  // the path exists, the method does not
	KindConflict                     // the change contradicts the current state
	KindTooLarge                     // the body exceeds a limit
	KindExhausted                    // a budget or a rate limit refused it; see RetryAfter
	KindUpstream                     // a provider answered something that cannot be used
	KindUnavailable                  // no model can take it now, or a store is down
	KindProvider                     // the provider refused it; ProviderStatus is its status
	KindUnsupportedMedia             // the body is not sent as the endpoint's media type
)

// Error is an error a caller may see. Message must never contain a secret or
// an internal detail such as a stack, a file path or an upstream address.
type Error struct {
	Kind    Kind
	Type    string // OpenAI error type, e.g. invalid_request_error
	Code    string // machine-readable code, e.g. model_not_found
	Param   string // the offending request field, if any
	Message string
	// RetryAfter, in seconds, is sent as Retry-After when positive.
	RetryAfter int
	// ProviderStatus is the HTTP status a provider answered, for KindProvider:
	// the caller gets the provider's status, reshaped.
	ProviderStatus int
	// Allow lists the methods the path takes, for a 405's Allow header.
	Allow string
	// Final marks a server-side refusal the same request meets again (no
	// model can serve it, the policy fails, a credential is missing): the
	// edge sends x-should-retry: false, which the OpenAI and Anthropic SDKs
	// read before retrying a 5xx.
	Final bool
}

func (e *Error) Error() string { return e.Message }

// HTTPStatus is the status an HTTP edge answers e with. It is for the edges
// only: the core says what went wrong (Kind), the edge how to say it.
func HTTPStatus(e *Error) int {
	switch e.Kind {
	case KindInvalid:
		return http.StatusBadRequest
	case KindUnauthenticated:
		return http.StatusUnauthorized
	case KindDenied:
		return http.StatusForbidden
	case KindNotFound:
		return http.StatusNotFound
	case KindWrongMethod:
		return http.StatusMethodNotAllowed
	case KindConflict:
		return http.StatusConflict
	case KindTooLarge:
		return http.StatusRequestEntityTooLarge
	case KindExhausted:
		return http.StatusTooManyRequests
	case KindUpstream:
		return http.StatusBadGateway
	case KindUnavailable:
		return http.StatusServiceUnavailable
	case KindUnsupportedMedia:
		return http.StatusUnsupportedMediaType
	case KindProvider:
		if e.ProviderStatus >= 400 && e.ProviderStatus <= 599 {
			return e.ProviderStatus
		}
		return http.StatusBadGateway
	}
	return http.StatusInternalServerError
}

// ServerSide reports whether e is stellwerk's or a provider's failure rather
// than the caller's (what an HTTP edge answers with a 5xx).
func ServerSide(e *Error) bool { return HTTPStatus(e) >= 500 }

// JSON renders the OpenAI error body.
func (e *Error) JSON() []byte {
	type inner struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Code    string  `json:"code"`
		Param   *string `json:"param"`
	}
	in := inner{Message: e.Message, Type: e.Type, Code: e.Code}
	if e.Param != "" {
		p := e.Param
		in.Param = &p
	}
	b, err := json.Marshal(struct {
		Error inner `json:"error"`
	}{in})
	if err != nil { // cannot happen for strings; keep a valid body anyway
		return []byte(`{"error":{"message":"internal error","type":"server_error","code":"internal_error","param":null}}`)
	}
	return b
}

// As extracts an *Error from err, or wraps an unknown error as a 500 that
// reveals nothing about it.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return Internal()
}

// Constructors, one per kind the contract names.

// Invalid: the request is malformed, or a rule it can satisfy refused it.
func Invalid(code, param, format string, args ...any) *Error {
	return &Error{Kind: KindInvalid, Type: "invalid_request_error", Code: code, Param: param, Message: fmt.Sprintf(format, args...)}
}

func NotFound(code, param, format string, args ...any) *Error {
	return &Error{Kind: KindNotFound, Type: "invalid_request_error", Code: code, Param: param, Message: fmt.Sprintf(format, args...)}
}

func WrongMethod(format string, args ...any) *Error {
	return &Error{Kind: KindWrongMethod, Type: "invalid_request_error", Code: "method_not_allowed", Message: fmt.Sprintf(format, args...)}
}

// Conflict: the change contradicts the state it would change (an admin
// request: a key that exists, a version that is not deployed).
func Conflict(code, param, format string, args ...any) *Error {
	return &Error{Kind: KindConflict, Type: "invalid_request_error", Code: code, Param: param, Message: fmt.Sprintf(format, args...)}
}

// UnsupportedMedia: the body is not sent as JSON (415).
func UnsupportedMedia(format string, args ...any) *Error {
	return &Error{Kind: KindUnsupportedMedia, Type: "invalid_request_error", Code: "unsupported_media_type", Message: fmt.Sprintf(format, args...)}
}

func TooLarge(limit int64) *Error {
	return &Error{Kind: KindTooLarge, Type: "invalid_request_error", Code: "request_too_large",
		Message: fmt.Sprintf("request body exceeds the limit of %d bytes", limit)}
}

// Upstream: a provider's answer cannot be used (not valid JSON, not the
// shape its API promises).
func Upstream(code, format string, args ...any) *Error {
	return &Error{Kind: KindUpstream, Type: "server_error", Code: code, Message: fmt.Sprintf(format, args...)}
}

func Internal() *Error {
	return &Error{Kind: KindInternal, Type: "server_error", Code: "internal_error", Message: "stellwerk hit an internal error; the request was not sent to any provider"}
}

// Misrouted is the answer to a request that reached stellwerk through a
// route of the operator's Envoy that is not stellwerk's (docs/envoy.md).
func Misrouted() *Error {
	return &Error{Kind: KindInternal, Type: "server_error", Code: "gateway_misconfigured",
		Message: "the gateway's route for this request is misconfigured; the request was not sent to any provider (operators: see the stellwerk log)"}
}

// ProviderError reshapes a provider answer (or Envoy's own reply for it)
// that is an error without the OpenAI error shape; the caller gets the
// provider's status. The provider's text is not quoted: it may be anything,
// an HTML page included.
func ProviderError(status int) *Error {
	e := &Error{Kind: KindProvider, ProviderStatus: status, Type: "server_error", Code: "provider_error",
		Message: fmt.Sprintf("the provider answered %d without an OpenAI-shaped error", status)}
	switch {
	case status == http.StatusServiceUnavailable || status == http.StatusBadGateway:
		e.Code, e.Message = "provider_unavailable", "the provider could not be reached or is unavailable"
	case status == http.StatusGatewayTimeout:
		e.Code, e.Message = "provider_timeout", "the provider did not answer in time"
	case status == http.StatusTooManyRequests:
		e.Type, e.Code, e.Message = "rate_limit_error", "provider_rate_limited", "the provider is rate limiting requests"
	case status < 500:
		e.Type = "invalid_request_error"
	}
	return e
}

// Denied: the key or the policy does not allow the request.
func Denied(code, param, format string, args ...any) *Error {
	return &Error{Kind: KindDenied, Type: "permission_error", Code: code, Param: param, Message: fmt.Sprintf(format, args...)}
}

// Unauthenticated: no key, or one that is unknown, expired or revoked.
func Unauthenticated(format string, args ...any) *Error {
	return &Error{Kind: KindUnauthenticated, Type: "authentication_error", Code: "invalid_api_key", Message: fmt.Sprintf(format, args...)}
}

func Unavailable(code, format string, args ...any) *Error {
	return &Error{Kind: KindUnavailable, Type: "server_error", Code: code, Message: fmt.Sprintf(format, args...)}
}

// Exhausted: a budget (code budget_exceeded) or a rate limit
// (rate_limit_exceeded) refused the request; retryAfter is in seconds (0:
// it will not free up by waiting).
func Exhausted(code string, retryAfter int, format string, args ...any) *Error {
	return &Error{Kind: KindExhausted, Type: "rate_limit_error", Code: code, Message: fmt.Sprintf(format, args...),
		RetryAfter: retryAfter}
}

// Truncate bounds client input echoed in an error message.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
