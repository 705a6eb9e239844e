package xds

import (
	"fmt"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	celv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/filters/cel/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/header"
	"github.com/stellwerk/stellwerk/internal/request"
)

// bufferSlack lets a body slightly over the configured limit reach stellwerk,
// which answers 413 itself; only far larger chunked bodies are cut by Envoy
// (and reshaped into the same error by the local reply config).
const bufferSlack = 64 << 10

// httpListener is the client-facing listener: one HTTP connection manager
// with stellwerk's ext_proc filter in front of the router, routes over ADS.
func httpListener(ir IR) (*listenerv3.Listener, error) {
	l := ir.Listener
	epf, err := extProcHTTPFilter(ir.ExtProc)
	if err != nil {
		return nil, err
	}
	rc := &routerv3.Router{SuppressEnvoyHeaders: true}
	if ir.Failover != nil {
		fl, err := firstAttemptLog(ir.ExtProc)
		if err != nil {
			return nil, err
		}
		rc.UpstreamLog = []*accesslogv3.AccessLog{fl}
	}
	router, err := toAny(rc)
	if err != nil {
		return nil, err
	}
	lrc, err := localReplyConfig(l.MaxRequestBytes)
	if err != nil {
		return nil, err
	}
	filters := []*hcmv3.HttpFilter{epf, {Name: wellknown.Router, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router}}}
	if len(l.CORSAllowOrigins) > 0 {
		cf, err := corsHTTPFilter()
		if err != nil {
			return nil, err
		}
		filters = append([]*hcmv3.HttpFilter{cf}, filters...)
	}
	hcm := &hcmv3.HttpConnectionManager{
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		StatPrefix: "stellwerk",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsConfigSource(),
			RouteConfigName: RouteConfigName,
		}},
		HttpFilters:      filters,
		NormalizePath:    wrapperspb.Bool(true),
		MergeSlashes:     true,
		UseRemoteAddress: wrapperspb.Bool(true),
		// HTTP/1.0 is what nginx speaks to its upstreams unless told
		// otherwise (proxy_http_version), and ApacheBench: without this
		// Envoy closed such a connection with no answer (the HTTP probe).
		// A request without a Host header names localhost.
		HttpProtocolOptions: &corev3.Http1ProtocolOptions{AcceptHttp_10: true, DefaultHostForHttp_10: "localhost"},
		// No client is internal, whatever its address: Envoy strips the
		// x-envoy-* controls every client sends and makes every request
		// its own x-request-id, which the edge keys a direct first
		// attempt by (attemptLog.direct). An empty config is not enough:
		// Envoy 1.40 still reads it as RFC 1918 and loopback being
		// internal. The one range is TEST-NET-1's 192.0.2.1 (RFC 5737),
		// which no client has.
		InternalAddressConfig: &hcmv3.HttpConnectionManager_InternalAddressConfig{
			CidrRanges: []*corev3.CidrRange{{AddressPrefix: "192.0.2.1", PrefixLen: wrapperspb.UInt32(32)}}},
		LocalReplyConfig: lrc,
	}
	if l.AccessLog {
		al, err := stdoutAccessLog()
		if err != nil {
			return nil, err
		}
		hcm.AccessLog = []*accesslogv3.AccessLog{al}
	}
	hcmAny, err := toAny(hcm)
	if err != nil {
		return nil, err
	}
	return &listenerv3.Listener{
		Name:                          l.Name,
		Address:                       socketAddress(l.Address, l.Port),
		PerConnectionBufferLimitBytes: wrapperspb.UInt32(uint32(l.MaxRequestBytes + bufferSlack)),
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{
				Name:       wellknown.HTTPConnectionManager,
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcmAny},
			}},
		}},
	}, nil
}

func adsConfigSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

// localReplyConfig gives the replies Envoy itself generates (body too large,
// provider unreachable, provider timeout) the OpenAI error shape. It matches
// on response flags and on 413 only, so stellwerk's own answers, which are
// already in that shape, keep their bodies.
func localReplyConfig(maxBytes int64) (*hcmv3.LocalReplyConfig, error) {
	tooLarge := apierr.TooLarge(maxBytes)
	// When stellwerk itself cannot be reached the filter fails closed; say so
	// in the OpenAI shape, with a retryable status, instead of an empty 500.
	extProcDown, err := celFilter("response.code_details.startsWith('ext_proc_error')")
	if err != nil {
		return nil, err
	}
	// When the router went away after the request left (a replica killed
	// while its provider answered), the client must not be told it was
	// never sent: it may have been processed and billed. An upstream host
	// was chosen then; before, the attribute is absent and the filter false.
	sent, err := celFilter("upstream.address != ''")
	if err != nil {
		return nil, err
	}
	// stellwerk's own answers (details "stellwerk") keep their bodies, even
	// on a stream whose earlier attempts left response flags behind.
	notOurs, err := celFilter("response.code_details != 'stellwerk'")
	if err != nil {
		return nil, err
	}
	// Anthropic's SDKs on /v1/messages read errors in Anthropic's shape,
	// Envoy's own replies too: each reply below comes first in that shape
	// there (the first mapper that matches answers).
	messages, err := celFilter("request.path.startsWith('" + request.PathMessages + "')")
	if err != nil {
		return nil, err
	}
	type reply struct {
		filter                          *accesslogv3.AccessLogFilter
		status                          uint32 // 0: Envoy's own
		message, typ, code, anthropicTy string
		flags                           bool // tell stellwerk why Envoy answered for the provider
		final                           bool // x-should-retry: false (the SDKs would send it again)
		retry                           bool // Retry-After: 1 (a replica restarts in under a second)
	}
	replies := []reply{
		{and(extProcDown, sent), 503, "the LLM router became unavailable after the request was sent to a provider; it may have been processed there",
			"server_error", "router_unavailable", "api_error", false, true, false},
		{extProcDown, 503, "the LLM router is unavailable; the request was not sent to any provider", "server_error", "router_unavailable", "api_error", false, false, true},
		{statusFilter(413), 0, tooLarge.Message, tooLarge.Type, tooLarge.Code, "request_too_large", false, false, false},
		{and(flagFilter("UT"), notOurs), 0, "the provider did not answer in time", "server_error", "provider_timeout", "timeout_error", true, false, false},
		{and(flagFilter("UF", "UH", "URX", "UO", "UC", "UR", "UPE", "NC"), notOurs), 0, "the provider could not be reached (%RESPONSE_FLAGS%)",
			"server_error", "provider_unavailable", "api_error", true, false, false},
	}
	var mappers []*hcmv3.ResponseMapper
	for _, anthropic := range []bool{true, false} {
		for _, r := range replies {
			m := &hcmv3.ResponseMapper{Filter: r.filter, BodyFormatOverride: errorFormat(r.message, r.typ, r.code)}
			if anthropic {
				m.Filter, m.BodyFormatOverride = and(messages, r.filter), anthropicErrorFormat(r.message, r.anthropicTy, r.code)
			}
			if r.status != 0 {
				m.StatusCode = wrapperspb.UInt32(r.status)
			}
			if r.flags {
				m.HeadersToAdd = []*corev3.HeaderValueOption{flagsHeader()}
			}
			if r.final {
				// It may have been processed and billed: the SDKs retry a
				// 503 unless told not to (the fleet probe).
				m.HeadersToAdd = append(m.HeadersToAdd, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: "x-should-retry", Value: "false"},
					AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD})
			}
			if r.retry {
				// Retryable, and says when: clients that read Retry-After
				// waited by their own backoff (the capacity probe).
				m.HeadersToAdd = append(m.HeadersToAdd, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: "retry-after", Value: "1"},
					AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD})
			}
			mappers = append(mappers, m)
		}
	}
	// Anything else Envoy answers itself (a request that is not valid
	// HTTP, one without a Host, an upgrade, headers too large) gets the
	// OpenAI shape too: it used to come without a body, or with none at
	// all (the security probe).
	for _, r := range []struct {
		filter    *accesslogv3.AccessLogFilter
		typ, code string
	}{
		{and(notOurs, statusRange(400, 499)), "invalid_request_error", "invalid_http_request"},
		{and(notOurs, statusRange(500, 599)), "server_error", "gateway_error"},
	} {
		mappers = append(mappers, &hcmv3.ResponseMapper{Filter: r.filter,
			BodyFormatOverride: errorFormat("the gateway refused the request (%RESPONSE_CODE% %RESPONSE_CODE_DETAILS%)", r.typ, r.code)})
	}
	return &hcmv3.LocalReplyConfig{Mappers: mappers}, nil
}

// statusRange matches a response status from lo to hi.
func statusRange(lo, hi uint32) *accesslogv3.AccessLogFilter {
	return and(statusCompare(accesslogv3.ComparisonFilter_GE, lo), statusCompare(accesslogv3.ComparisonFilter_LE, hi))
}

// anthropicErrorFormat is errorFormat in Anthropic's shape
// ({"type":"error","error":{"type","message"}}, stellwerk's code beside).
func anthropicErrorFormat(message, typ, code string) *corev3.SubstitutionFormatString {
	return &corev3.SubstitutionFormatString{
		Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: &structpb.Struct{Fields: map[string]*structpb.Value{
			"type": structpb.NewStringValue("error"),
			"error": structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
				"type":    structpb.NewStringValue(typ),
				"message": structpb.NewStringValue(message),
				"code":    structpb.NewStringValue(code),
			}}),
		}}},
	}
}

// flagsHeader tells stellwerk why Envoy answered for the provider.
func flagsHeader() *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: header.UpstreamFlags, Value: "%RESPONSE_FLAGS%"},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}
}

func celFilter(expr string) (*accesslogv3.AccessLogFilter, error) {
	a, err := toAny(&celv3.ExpressionFilter{Expression: expr})
	if err != nil {
		return nil, err
	}
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ExtensionFilter{ExtensionFilter: &accesslogv3.ExtensionFilter{
		Name: "envoy.access_loggers.extension_filters.cel", ConfigType: &accesslogv3.ExtensionFilter_TypedConfig{TypedConfig: a},
	}}}, nil
}

func and(fs ...*accesslogv3.AccessLogFilter) *accesslogv3.AccessLogFilter {
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_AndFilter{AndFilter: &accesslogv3.AndFilter{Filters: fs}}}
}

func statusFilter(code uint32) *accesslogv3.AccessLogFilter {
	return statusCompare(accesslogv3.ComparisonFilter_EQ, code)
}

// statusCompare matches a response status compared to code by op.
func statusCompare(op accesslogv3.ComparisonFilter_Op, code uint32) *accesslogv3.AccessLogFilter {
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_StatusCodeFilter{StatusCodeFilter: &accesslogv3.StatusCodeFilter{
		Comparison: &accesslogv3.ComparisonFilter{Op: op, Value: &corev3.RuntimeUInt32{
			DefaultValue: code, RuntimeKey: fmt.Sprintf("stellwerk.local_reply.status_%d", code),
		}},
	}}}
}

func flagFilter(flags ...string) *accesslogv3.AccessLogFilter {
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_ResponseFlagFilter{
		ResponseFlagFilter: &accesslogv3.ResponseFlagFilter{Flags: flags},
	}}
}

func errorFormat(message, typ, code string) *corev3.SubstitutionFormatString {
	return &corev3.SubstitutionFormatString{
		Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: &structpb.Struct{Fields: map[string]*structpb.Value{
			"error": structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
				"message": structpb.NewStringValue(message),
				"type":    structpb.NewStringValue(typ),
				"code":    structpb.NewStringValue(code),
				"param":   structpb.NewNullValue(),
			}}),
		}}},
	}
}

// stdoutAccessLog writes one JSON line per request. It never includes
// request bodies or credentials.
func stdoutAccessLog() (*accesslogv3.AccessLog, error) {
	f := map[string]*structpb.Value{}
	for k, v := range map[string]string{
		"start":       "%START_TIME%",
		"method":      "%REQ(:METHOD)%",
		"path":        "%PATH(NQ:ORIG_OR_PATH)%", // without the query: a client may put its key there
		"status":      "%RESPONSE_CODE%",
		"flags":       "%RESPONSE_FLAGS%",
		"duration_ms": "%DURATION%",
		"upstream":    "%UPSTREAM_CLUSTER%",
		"decision_id": "%RESP(" + header.DecisionID + ")%",
		"model":       "%RESP(" + header.Model + ")%",
		"bytes_in":    "%BYTES_RECEIVED%",
		"bytes_out":   "%BYTES_SENT%",
		// How long Envoy waited for stellwerk in each ext_proc phase, in
		// µs (the filter's logging info); a body phase sums its messages.
		"ext_proc_request_headers_us":  "%FILTER_STATE(" + ExtProcFilterName + ":FIELD:request_header_latency_us)%",
		"ext_proc_request_body_us":     "%FILTER_STATE(" + ExtProcFilterName + ":FIELD:request_body_total_latency_us)%",
		"ext_proc_response_headers_us": "%FILTER_STATE(" + ExtProcFilterName + ":FIELD:response_header_latency_us)%",
		"ext_proc_response_body_us":    "%FILTER_STATE(" + ExtProcFilterName + ":FIELD:response_body_total_latency_us)%",
	} {
		f[k] = structpb.NewStringValue(v)
	}
	cfg := &streamv3.StdoutAccessLog{AccessLogFormat: &streamv3.StdoutAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{
		Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: &structpb.Struct{Fields: f}},
	}}}
	a, err := toAny(cfg)
	if err != nil {
		return nil, err
	}
	return &accesslogv3.AccessLog{Name: "envoy.access_loggers.stdout", ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: a}}, nil
}
