package extproc

import (
	"strconv"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// TestMetadataValues: the metadata made from one block is what structpb
// makes, within the block's arrays and past them (a long failover), and no
// two values share a slot.
func TestMetadataValues(t *testing.T) {
	for _, attempts := range []int{1, 3, 5, 12} {
		t.Run(strconv.Itoa(attempts), func(t *testing.T) {
			b := new(metadataValues)
			inner, want := map[string]*structpb.Value{}, map[string]*structpb.Value{}
			lb, wantLB := map[string]*structpb.Value{}, map[string]*structpb.Value{}
			for i := range 3 {
				k := "k" + strconv.Itoa(i)
				inner[k], want[k] = b.str("v"+k), structpb.NewStringValue("v"+k)
			}
			for i := range attempts {
				k := "attempt" + strconv.Itoa(i)
				lb[k], wantLB[k] = b.str("p"+k), structpb.NewStringValue("p"+k)
			}
			extra := map[string]*structpb.Value{"x": b.str("y")}
			got := b.object(map[string]*structpb.Value{"a": b.nest(inner), "b": b.nest(lb), "c": b.nest(extra)})
			ref := &structpb.Struct{Fields: map[string]*structpb.Value{
				"a": structpb.NewStructValue(&structpb.Struct{Fields: want}),
				"b": structpb.NewStructValue(&structpb.Struct{Fields: wantLB}),
				"c": structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"x": structpb.NewStringValue("y")}}),
			}}
			if !proto.Equal(got, ref) {
				t.Fatalf("got %v\nwant %v", got, ref)
			}
			seen := map[*structpb.Value]bool{}
			for _, m := range []map[string]*structpb.Value{inner, lb, extra, got.Fields} {
				for k, v := range m {
					if seen[v] {
						t.Fatalf("%s shares its Value with another field", k)
					}
					seen[v] = true
				}
			}
		})
	}
}

func BenchmarkMetadataValues(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		v := new(metadataValues)
		md := map[string]*structpb.Value{"plan": v.str("p"), "path": v.str("/v1/chat/completions"), "model": v.str("m")}
		lb := map[string]*structpb.Value{"attempt2": v.str("a"), "attempt3": v.str("-")}
		_ = v.object(map[string]*structpb.Value{"stellwerk": v.nest(md), "envoy.lb": v.nest(lb)})
	}
}
