package extproc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/zap"

	"github.com/stellwerk/stellwerk/internal/decision"
)

// TestDetachedRecordHoldsNoneOfTheBody: the request is parsed in place, so
// a record's model, user, metadata and headers point into the request's
// body. A record waiting in the audit queue kept its whole body alive
// through them even after the request path had hashed the body and let it
// go (the queue's bound on body bytes, audit.Record): with the writer
// stalled, 65,536 records of 1 MiB prompts held 64 GiB. A detached record
// points into the body nowhere.
func TestDetachedRecordHoldsNoneOfTheBody(t *testing.T) {
	st := productionStateEnv(t, func(string) string { return "sk-provider" })
	st.Spend = &rowsRecorder{}
	st.Audit, _ = testAuditLog(t, false)
	body := []byte(`{"model":"auto","user":"u-4711","max_tokens":300,"metadata":{"team":"search","ticket":"T-1"},` +
		`"policy":{"fallback":true},"messages":[{"role":"user","content":"` +
		strings.Repeat("Explain the difference between a mutex and a semaphore. ", 30) + ` Mail jane.doe@example.com."}]}`)
	p := &edge{filter: filter{state: st, log: zap.NewNop(), id: "0123456789abcdef0123456789abcdef"}, ctx: context.Background()}
	for _, m := range []*extprocv3.ProcessingRequest{
		headersMsg("POST", "/v1/chat/completions", false, "authorization", "Bearer sk-open", "x-stellwerk-tags", "a=b"),
		{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: body, EndOfStream: true}}},
		respHeadersMsg("200", "application/json"),
		respBodyMsg(`{"choices":[],"usage":{"prompt_tokens":412,"completion_tokens":180}}`, true),
	} {
		if r := p.handle(m); r.GetImmediateResponse() != nil {
			t.Fatalf("refused: %v", r)
		}
	}
	r := p.auditRecord()
	in, ok := r.Replay.(*decision.Inputs)
	if !ok || r.Request == nil || len(in.Classification.PII) == 0 || len(in.Metadata) != 2 || in.User == "" {
		t.Fatalf("the record lacks what the test looks at: replay %T, request %v", r.Replay, r.Request)
	}
	// What holds the body: its bytes, and the decision, which holds the
	// parsed request (a pointer into it keeps all of it).
	held := []span{{uintptr(unsafe.Pointer(unsafe.SliceData(p.reqBody))), uintptr(len(p.reqBody))},
		{uintptr(unsafe.Pointer(p.result)), unsafe.Sizeof(*p.result)}}
	// The test sees what it looks for: the record as built points into both.
	if in := pointsInto(reflect.ValueOf(r), held); len(in) < 2 {
		t.Fatalf("the record as built points into the body or the decision at %v only: the test finds too little", in)
	}
	before, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	table := r.CandidateList()
	r.Detach()
	if after, _ := json.Marshal(r); !bytes.Equal(after, before) {
		t.Errorf("Detach changed the record:\n%s\n%s", before, after)
	}
	if !reflect.DeepEqual(r.CandidateList(), table) {
		t.Error("Detach changed the candidate table")
	}
	if in := pointsInto(reflect.ValueOf(r), held); len(in) > 0 {
		t.Errorf("after Detach the record still points into the body or the decision at %s", strings.Join(in, ", "))
	}
	if r.Request.Model != "auto" {
		t.Errorf("model %q after Detach", r.Request.Model)
	}
}

// A span is a block of memory: where it starts and its length.
type span struct{ at, n uintptr }

// pointsInto names every string, byte slice (but the request's body) and
// pointer reachable from v that points into one of spans.
func pointsInto(v reflect.Value, spans []span) []string {
	in := func(p uintptr) bool {
		for _, s := range spans {
			if p >= s.at && p < s.at+s.n {
				return true
			}
		}
		return false
	}
	var out []string
	seen := map[uintptr]bool{}
	var walk func(v reflect.Value, path string)
	walk = func(v reflect.Value, path string) {
		switch v.Kind() {
		case reflect.String:
			if v.Len() > 0 && in(uintptr(unsafe.Pointer(unsafe.StringData(v.String())))) {
				out = append(out, path)
			}
		case reflect.Pointer:
			if v.IsNil() || seen[v.Pointer()] {
				return
			}
			if in(v.Pointer()) {
				out = append(out, path+" (pointer)")
			}
			seen[v.Pointer()] = true
			walk(v.Elem(), path)
		case reflect.Interface:
			if !v.IsNil() {
				walk(v.Elem(), path)
			}
		case reflect.Struct:
			for i := range v.NumField() {
				walk(v.Field(i), path+"."+v.Type().Field(i).Name)
			}
		case reflect.Slice:
			if v.Type().Elem().Kind() == reflect.Uint8 {
				if v.Len() > 0 && in(v.Pointer()) && path != ".Request.Body" {
					out = append(out, path)
				}
				return
			}
			if v.Len() > 0 && in(v.Pointer()) {
				out = append(out, path+" (slice)")
			}
			for i := range v.Len() {
				walk(v.Index(i), fmt.Sprintf("%s[%d]", path, i))
			}
		case reflect.Array:
			for i := range v.Len() {
				walk(v.Index(i), fmt.Sprintf("%s[%d]", path, i))
			}
		case reflect.Map:
			it := v.MapRange()
			for it.Next() {
				walk(it.Key(), path+"{key}")
				walk(it.Value(), fmt.Sprintf("%s[%v]", path, it.Key()))
			}
		}
	}
	walk(v, "")
	return out
}
