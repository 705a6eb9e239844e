// Package apierr is the one error shape stellwerk shows to callers: the OpenAI
// error object {"error":{"message","type","code","param"}} with an HTTP
// status. The decision core returns these; the Envoy adapter renders them.
package apierr

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Error is an error a caller may see. Message must never contain a secret or
// an internal detail such as a stack, a file path or an upstream address.
type Error struct {
	Status  int    // HTTP status
	Type    string // OpenAI error type, e.g. invalid_request_error
	Code    string // machine-readable code, e.g. model_not_found
	Param   string // the offending request field, if any
	Message string
	// RetryAfter, in seconds, is sent as Retry-After when positive.
	RetryAfter int
}

func (e *Error) Error() string { return e.Message }

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

// Constructors for the statuses the contract names.

func BadRequest(code, param, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: code, Param: param, Message: fmt.Sprintf(format, args...)}
}

func NotFound(code, param, format string, args ...any) *Error {
	return &Error{Status: http.StatusNotFound, Type: "invalid_request_error", Code: code, Param: param, Message: fmt.Sprintf(format, args...)}
}

func MethodNotAllowed(format string, args ...any) *Error {
	return &Error{Status: http.StatusMethodNotAllowed, Type: "invalid_request_error", Code: "method_not_allowed", Message: fmt.Sprintf(format, args...)}
}

func TooLarge(limit int64) *Error {
	return &Error{Status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error", Code: "request_too_large",
		Message: fmt.Sprintf("request body exceeds the limit of %d bytes", limit)}
}

func BadGateway(code, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadGateway, Type: "server_error", Code: code, Message: fmt.Sprintf(format, args...)}
}

func Internal() *Error {
	return &Error{Status: http.StatusInternalServerError, Type: "server_error", Code: "internal_error", Message: "stellwerk hit an internal error; the request was not sent to any provider"}
}

// Misrouted is the answer to a request that reached stellwerk through a
// route of the operator's Envoy that is not stellwerk's (docs/envoy.md).
func Misrouted() *Error {
	return &Error{Status: http.StatusInternalServerError, Type: "server_error", Code: "gateway_misconfigured",
		Message: "the gateway's route for this request is misconfigured; the request was not sent to any provider (operators: see the stellwerk log)"}
}

// ProviderError reshapes a provider answer (or Envoy's own reply for it)
// that is an error without the OpenAI error shape. The provider's text is
// not quoted: it may be anything, an HTML page included.
func ProviderError(status int) *Error {
	e := &Error{Status: status, Type: "server_error", Code: "provider_error",
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

func Forbidden(code, param, format string, args ...any) *Error {
	return &Error{Status: http.StatusForbidden, Type: "permission_error", Code: code, Param: param, Message: fmt.Sprintf(format, args...)}
}

func Unauthorized(format string, args ...any) *Error {
	return &Error{Status: http.StatusUnauthorized, Type: "authentication_error", Code: "invalid_api_key", Message: fmt.Sprintf(format, args...)}
}

func Unavailable(code, format string, args ...any) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Type: "server_error", Code: code, Message: fmt.Sprintf(format, args...)}
}

// TooManyRequests is a 429: a budget (code budget_exceeded) or a rate limit
// (rate_limit_exceeded) refused the request; retryAfter is in seconds (0:
// it will not free up by waiting).
func TooManyRequests(code string, retryAfter int, format string, args ...any) *Error {
	return &Error{Status: http.StatusTooManyRequests, Type: "rate_limit_error", Code: code, Message: fmt.Sprintf(format, args...),
		RetryAfter: retryAfter}
}

// Truncate bounds client input echoed in an error message.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
