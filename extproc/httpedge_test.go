package extproc

import (
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/stellwerk/stellwerk/internal/auth"
	"github.com/stellwerk/stellwerk/internal/config"
)

func TestJSONMediaType(t *testing.T) {
	for v, want := range map[string]bool{
		"application/json": true, "Application/JSON": true, "application/json; charset=utf-8": true,
		`application/json;charset="UTF-8"`: true, "application/vnd.api+json": true, " application/json ": true,
		"text/plain": false, "text/plain;charset=UTF-8": false, "application/x-www-form-urlencoded": false,
		"multipart/form-data; boundary=x": false, "": false, "application/json; charset=utf-16": false,
		"application/json,text/html": false, "application/jsonx": false, "text/json": false, "application/+json x": false,
	} {
		if got := jsonMediaType(v); got != want {
			t.Errorf("jsonMediaType(%q) = %v", v, got)
		}
		if got := jsonMediaType([]byte(v)); got != want {
			t.Errorf("jsonMediaType([]byte(%q)) = %v", v, got)
		}
	}
}

func TestHostAllowed(t *testing.T) {
	hosts := []string{"localhost"}
	for v, want := range map[string]bool{
		"localhost": true, "localhost:10000": true, "LOCALHOST.:10000": true, "127.0.0.1:10000": true, "[::1]:10000": true, "[::1]": true,
		// An address is what no rebinding page sends: any is answered.
		"10.1.2.3:10000": true, "127.0.0.2": true, "[fe80::1]:80": true,
		"rebind.attacker.example:10000": false, "127.0.0.1.nip.io": false, "": false, "[::1": false, "localhost.attacker.example": false,
		"localhost:19701.evil.com": false, "localhost:": false, "[::1]x": false, "127.1": false, "0x7f000001": false,
		"127.0.0.1.": false, "256.0.0.1": false, "01.2.3.4": false, "1..2.3": false, "::1": false,
	} {
		if got := hostAllowed(v, hosts); got != want {
			t.Errorf("hostAllowed(%q) = %v", v, got)
		}
	}
}

// TestEdgeRefusesOtherHosts: a loopback listener answers to localhost and
// its addresses only; a page that re-points its own name at 127.0.0.1 is
// refused before anything is read.
func TestEdgeRefusesOtherHosts(t *testing.T) {
	for host, want := range map[string]int{"rebind.attacker.example:10000": 403, "127.0.0.1:10000": 200, "localhost": 200} {
		p := newProc(t)
		p.state.Hosts = (&config.Config{Envoy: config.Envoy{Listener: "127.0.0.1:10000"}}).AllowedHosts()
		r := p.handle(headersMsg("GET", "/v1/models", true, ":authority", host))
		got := 200
		if ir := r.GetImmediateResponse(); ir != nil {
			got = int(ir.GetStatus().GetCode())
		}
		if got != want {
			t.Errorf("Host %q: %d, want %d", host, got, want)
		}
	}
}

// TestCredentialSentTwice: Envoy joins two authorization headers with a
// comma. The same key twice is that key; two keys are refused, as two
// different credential headers are.
func TestCredentialSentTwice(t *testing.T) {
	st := testState(t)
	st.Keys = auth.New(&config.Config{Auth: config.Auth{Mode: "open"}, Keys: []config.Key{{ID: "legal", Workspace: "default", SHA256: auth.Hash("sk-legal")}}},
		func(string) string { return "" })
	for v, want := range map[string]string{"Bearer sk-legal,Bearer sk-legal": "legal", "Bearer sk-legal, Bearer sk-other": "401", "Bearer sk-legal": "legal"} {
		p := newProc(t)
		p.state = st
		r := p.handle(headersMsg("POST", "/v1/chat/completions", false, "authorization", v))
		got := p.principal.KeyID
		if ir := r.GetImmediateResponse(); ir != nil {
			got = ir.GetStatus().GetCode().String()
			if ir.GetStatus().GetCode() == 401 {
				got = "401"
			}
		}
		if got != want {
			t.Errorf("authorization %q: %q, want %q", v, got, want)
		}
	}
}

// TestHeaderChecksAllocateNothing: the content-type and host checks run
// on every request, on the header bytes as Envoy sent them.
func TestHeaderChecksAllocateNothing(t *testing.T) {
	ct, host := []byte("application/json; charset=utf-8"), []byte("127.0.0.1:10000")
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if n := testing.AllocsPerRun(100, func() { jsonMediaType(ct) }); n != 0 {
		t.Errorf("jsonMediaType: %v allocations", n)
	}
	if n := testing.AllocsPerRun(100, func() { hostAllowed(host, hosts) }); n != 0 {
		t.Errorf("hostAllowed: %v allocations", n)
	}
}

// TestHTTPHeadersOfAnswers: a 405 says which methods the path takes, a
// 401 how to authenticate (RFC 9110), and a model list, which depends on
// the key, is kept out of shared caches.
func TestHTTPHeadersOfAnswers(t *testing.T) {
	header := func(r *extprocv3.ProcessingResponse, name string) string {
		for _, h := range r.GetImmediateResponse().GetHeaders().GetSetHeaders() {
			if h.GetHeader().GetKey() == name {
				return string(h.GetHeader().GetRawValue())
			}
		}
		return ""
	}
	p := newProc(t)
	if r := p.handle(headersMsg("DELETE", "/v1/chat/completions", true)); header(r, "allow") != "POST" {
		t.Errorf("405 on chat: allow %q", header(r, "allow"))
	}
	p = newProc(t)
	if r := p.handle(headersMsg("POST", "/v1/models", true)); header(r, "allow") != "GET, HEAD" {
		t.Errorf("405 on models: allow %q", header(r, "allow"))
	}
	p = newProc(t)
	r := p.handle(headersMsg("GET", "/v1/models", true))
	if header(r, "cache-control") != "private, no-cache" || header(r, "vary") != "authorization, x-api-key, api-key" {
		t.Errorf("models: cache-control %q, vary %q", header(r, "cache-control"), header(r, "vary"))
	}
	st := testState(t)
	st.Keys = auth.New(&config.Config{Auth: config.Auth{Mode: "keys"}}, func(string) string { return "" })
	p = newProc(t)
	p.state = st
	r = p.handle(headersMsg("POST", "/v1/chat/completions", false, "authorization", "Bearer sk-nobody"))
	if r.GetImmediateResponse().GetStatus().GetCode() != 401 || header(r, "www-authenticate") != `Bearer realm="stellwerk"` {
		t.Errorf("401: %v, www-authenticate %q", r.GetImmediateResponse().GetStatus().GetCode(), header(r, "www-authenticate"))
	}
}

// FuzzHeaderChecks: the host and content-type checks read what clients
// send: they never panic, read bytes and strings alike, and answer to no
// name but localhost.
func FuzzHeaderChecks(f *testing.F) {
	for _, s := range []string{"localhost:10000", "[::1]:80", "127.0.0.1", "application/json; charset=utf-8", "a+json", "[", ":", "1.2.3.4.5"} {
		f.Add(s)
	}
	hosts := []string{"localhost"}
	f.Fuzz(func(t *testing.T, v string) {
		if jsonMediaType(v) != jsonMediaType([]byte(v)) || hostAllowed(v, hosts) != hostAllowed([]byte(v), hosts) {
			t.Fatalf("%q: string and bytes differ", v)
		}
		if hostAllowed(v, hosts) && !strings.HasPrefix(strings.ToLower(v), "localhost") && !strings.ContainsAny(v, ".:[") {
			t.Fatalf("%q: answered a name not listed", v)
		}
	})
}

// TestClientAddressIsAnAddress: the address the record keeps is one; an
// operator's Envoy that passes a client's own header on cannot put text
// there (the red team).
func TestClientAddressIsAnAddress(t *testing.T) {
	for v, want := range map[string]string{"10.1.2.3": "10.1.2.3", "::1": "::1", "6.6.6.6 (admin)": "", "<script>": "", "": ""} {
		p := newProc(t)
		p.handle(headersMsg("GET", "/v1/models", true, "x-envoy-external-address", v))
		if p.clientAddr != want {
			t.Errorf("%q: kept %q", v, p.clientAddr)
		}
	}
}
