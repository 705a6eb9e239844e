package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// FuzzVerifyExport: an export file is untrusted input; verifying any bytes
// returns a report or an error, never panics, and the same whether the file
// is read line by line (a reader that seeks) or whole (one that does not).
func FuzzVerifyExport(f *testing.F) {
	s := testSigner("a")
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	prev := ""
	open := Checkpoint{Writer: "r/1", Time: time.Unix(1e9, 0).UTC(), Reason: ReasonOpen}
	s.Sign(&open)
	_ = enc.Encode(CheckpointLine(&open))
	for i := range 4 {
		body, _ := jsonRecord(decision(i, "support"))
		e := Entry{Writer: "r/1", Seq: uint64(i + 1), Time: time.Unix(1e9, 0).UTC(), Kind: KindDecision, Workspace: "support", ID: "d", Body: body}
		e.seal(prev)
		prev = e.Hash
		_ = enc.Encode(EntryLine(&e, i == 2))
	}
	end := Checkpoint{Writer: "r/1", Seq: 4, Hash: prev, Prev: open.Digest, Time: time.Unix(1e9, 0).UTC(), Reason: ReasonShutdown}
	s.Sign(&end)
	lines := bytes.SplitAfter(buf.Bytes(), []byte("\n"))
	_ = enc.Encode(CheckpointLine(&end))
	f.Add(buf.Bytes())
	// As Export writes it: the checkpoints first.
	endLine, _ := json.Marshal(CheckpointLine(&end))
	f.Add(bytes.Join(append([][]byte{lines[0], append(endLine, '\n')}, lines[1:]...), nil))
	f.Add([]byte(`{"type":"record","writer":"w","seq":18446744073709551615,"time":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"type":"link","writer":"w","seq":0}` + "\n" + `{"type":"checkpoint","writer":"w","seq":3,"time":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(string(bytes.Join(append([][]byte{[]byte("type,writer,seq,time,kind,workspace,id,prev,body_sha256,leaf,hash,body,pruned,reason,key_id,signature,digest")},
		[]byte("link,w,2,,,,,,,l,h,,,,,,")), []byte("\n")))))
	keys := []PublicKey{s.Public()}
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := VerifyExport(bytes.NewReader(b), keys, nil)
		if err == nil && rep == nil {
			t.Fatal("no report and no error")
		}
		whole, werr := VerifyExport(bytes.NewBuffer(b), keys, nil)
		if fmt.Sprint(err) != fmt.Sprint(werr) || !reflect.DeepEqual(rep, whole) {
			t.Fatalf("read line by line: %v %+v\nread whole: %v %+v", err, rep, werr, whole)
		}
	})
}
