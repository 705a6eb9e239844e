package spend

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stellwerk/stellwerk/internal/ledger"
)

func TestResolve(t *testing.T) {
	now := time.Date(2025, 6, 15, 12, 0, 0, 0, time.UTC)
	berlin, _ := time.LoadLocation("Europe/Berlin")
	santiago, _ := time.LoadLocation("America/Santiago")
	for name, tc := range map[string]struct {
		p            Params
		tz           string
		since, until time.Time
		by           []Dim
		loc          *time.Location
	}{
		"defaults":          {Params{}, "", now.Add(-30 * 24 * time.Hour), now, nil, time.UTC},
		"dates in the zone": {Params{Since: "2025-06-01", Until: "2025-06-02", GroupBy: "model, Day,model"}, "Europe/Berlin", time.Date(2025, 6, 1, 0, 0, 0, 0, berlin), time.Date(2025, 6, 2, 0, 0, 0, 0, berlin), []Dim{DimModel, DimDay}, berlin},
		// Santiago's clocks skip 2026-09-06 00:00 -04: the date begins
		// at 01:00 -03 (04:00 UTC), not an hour earlier (the time probe).
		"a date whose midnight is skipped": {Params{Since: "2026-09-06", Until: "2026-09-07"}, "America/Santiago", time.Date(2026, 9, 6, 4, 0, 0, 0, time.UTC), time.Date(2026, 9, 7, 3, 0, 0, 0, time.UTC), nil, santiago},
		"tz overrides":                     {Params{Since: "2025-06-01", TimeZone: "UTC"}, "Europe/Berlin", time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), now, nil, time.UTC},
		"durations":                        {Params{Since: "7d", Until: "36h"}, "", now.Add(-7 * 24 * time.Hour), now.Add(-36 * time.Hour), nil, time.UTC},
		"rfc3339 and now":                  {Params{Since: "2025-06-15T10:00:00+02:00", Until: "now"}, "", time.Date(2025, 6, 15, 8, 0, 0, 0, time.UTC), now, nil, time.UTC},
		"since before until default":       {Params{Until: "2025-06-10"}, "", time.Date(2025, 5, 11, 0, 0, 0, 0, time.UTC), time.Date(2025, 6, 10, 0, 0, 0, 0, time.UTC), nil, time.UTC},
		// Teams and users are per workspace (a helper's report summed
		// two workspaces' "ml" teams).
		"team with its workspace": {Params{GroupBy: "day,team,user"}, "", now.Add(-30 * 24 * time.Hour), now, []Dim{DimDay, DimWorkspace, DimTeam, DimUser}, time.UTC},
		// So are end users (each workspace's apps name their own); tags
		// are the operator's one metadata key, across workspaces.
		"end user with its workspace": {Params{GroupBy: "tag,end_user"}, "", now.Add(-30 * 24 * time.Hour), now, []Dim{DimTag, DimWorkspace, DimEndUser}, time.UTC},
		"tag alone":                   {Params{GroupBy: "tag"}, "", now.Add(-30 * 24 * time.Hour), now, []Dim{DimTag}, time.UTC},
	} {
		t.Run(name, func(t *testing.T) {
			q, err := tc.p.Resolve(now, tc.tz)
			if err != nil {
				t.Fatal(err)
			}
			if !q.Since.Equal(tc.since) || !q.Until.Equal(tc.until) || q.Location.String() != tc.loc.String() ||
				strings.Join(dimStrings(q.GroupBy), ",") != strings.Join(dimStrings(tc.by), ",") {
				t.Errorf("got %v – %v by %v in %v; want %v – %v by %v in %v", q.Since, q.Until, q.GroupBy, q.Location,
					tc.since, tc.until, tc.by, tc.loc)
			}
		})
	}
}

func dimStrings(ds []Dim) []string {
	var out []string
	for _, d := range ds {
		out = append(out, string(d))
	}
	return out
}

// TestResolveReportsEverything: every bad parameter is named at once.
func TestResolveReportsEverything(t *testing.T) {
	_, err := Params{Since: "yesterday", Until: "2025-13-01", GroupBy: "model,cost", TimeZone: "Mars/Olympus",
		Filter: map[Dim]string{DimDay: "2025-01-01"}}.Resolve(time.Now(), "")
	var fields []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var inv *InvalidError
		if !errors.As(e, &inv) {
			t.Fatalf("not an InvalidError: %v", e)
		}
		fields = append(fields, inv.Field)
	}
	if got := strings.Join(fields, ","); got != "tz,until,since,group_by,day" {
		t.Errorf("fields %s: %v", got, err)
	}
	_, err = Params{Since: "2025-06-02", Until: "2025-06-01"}.Resolve(time.Now(), "")
	var inv *InvalidError
	if !errors.As(err, &inv) || inv.Field != "until" {
		t.Errorf("reversed range: %v", err)
	}
}

func testReport() *Report {
	return &Report{Since: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), Until: time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC), TimeZone: "UTC",
		GroupBy: []Dim{DimModel, DimDay},
		Groups: []Group{
			{Values: []string{`m,"1"`, "2025-06-01"}, Sums: Sums{Requests: 2, TokensIn: 10, TokensOut: 20, Cost: 1_234_567, CostEUR: 1.234567, Estimated: 1}},
			{Values: []string{"m2", "2025-06-01"}, Sums: Sums{Requests: 1, TokensIn: 1, TokensOut: 2, TokensCached: 1, Cost: 5, CostEUR: 0.000005}},
		},
		Total: Sums{Requests: 3, TokensIn: 11, TokensOut: 22, TokensCached: 1, Cost: 1_234_572, CostEUR: 1.234572, Estimated: 1}}
}

func TestReportJSON(t *testing.T) {
	b, err := json.Marshal(testReport())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"object":"spend.report","since":"2025-06-01T00:00:00Z","until":"2025-06-02T00:00:00Z","timezone":"UTC","group_by":["model","day"],` +
		`"total":{"requests":3,"tokens_in":11,"tokens_out":22,"tokens_cached":1,"cost_micro_eur":1234572,"cost_eur":1.234572,"estimated":1},"data":[` +
		`{"model":"m,\"1\"","day":"2025-06-01","requests":2,"tokens_in":10,"tokens_out":20,"tokens_cached":0,"cost_micro_eur":1234567,"cost_eur":1.234567,"estimated":1},` +
		`{"model":"m2","day":"2025-06-01","requests":1,"tokens_in":1,"tokens_out":2,"tokens_cached":1,"cost_micro_eur":5,"cost_eur":0.000005,"estimated":0}]}`
	if string(b) != want {
		t.Errorf("got\n%s\nwant\n%s", b, want)
	}
	if !json.Valid(b) {
		t.Error("invalid JSON")
	}
}

func TestReportCSV(t *testing.T) {
	var buf bytes.Buffer
	if err := testReport().WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	want := "model,day,requests,tokens_in,tokens_out,tokens_cached,cost_eur,estimated\n" +
		`"m,""1""",2025-06-01,2,10,20,0,1.234567,1` + "\n" +
		"m2,2025-06-01,1,1,2,1,0.000005,0\n"
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}
}

func TestDecimalEUR(t *testing.T) {
	for m, want := range map[ledger.MicroEUR]string{0: "0.000000", 1: "0.000001", 1_000_000: "1.000000", 123_456_789: "123.456789", -5: "-0.000005"} {
		if got := DecimalEUR(m); got != want {
			t.Errorf("%d: %s, want %s", m, got, want)
		}
	}
}

// TestTeamFilterNamesItsWorkspace: team=acme/ml is workspace acme's ml.
func TestTeamFilterNamesItsWorkspace(t *testing.T) {
	q, err := Params{Filter: map[Dim]string{DimTeam: "acme/ml"}}.Resolve(time.Now(), "")
	if err != nil || q.Filter[DimWorkspace] != "acme" || q.Filter[DimTeam] != "ml" {
		t.Errorf("%v %v", q.Filter, err)
	}
	if _, err := (Params{Filter: map[Dim]string{DimTeam: "acme/ml", DimWorkspace: "legal"}}).Resolve(time.Now(), ""); err == nil {
		t.Error("a team of another workspace than the one named")
	}
}

// TestReportCSVCellsAreText: a group's value a spreadsheet would read as a
// formula (a client's user or tag: "=HYPERLINK(…)", "+cmd|…", "@SUM(…)",
// "-1+1") is written with a leading apostrophe; JSON keeps it as it is.
func TestReportCSVCellsAreText(t *testing.T) {
	r := &Report{GroupBy: []Dim{DimEndUser}, Groups: []Group{
		{Values: []string{`=HYPERLINK("http://evil.example","x")`}}, {Values: []string{"+cmd|' /C calc'!A0"}}, {Values: []string{"@SUM(A1)"}},
		{Values: []string{"-1+1"}}, {Values: []string{"\tx"}}, {Values: []string{"u-4711"}}, {Values: []string{""}},
	}}
	var buf bytes.Buffer
	if err := r.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")[1:]
	for i, want := range []string{`"'=HYPERLINK(""http://evil.example"",""x"")"`, "'+cmd|' /C calc'!A0", "'@SUM(A1)", "'-1+1", "'\tx", "u-4711", ""} {
		if got, _, _ := strings.Cut(lines[i], ",0,"); got != want {
			t.Errorf("cell %d: %q, want %q", i, got, want)
		}
	}
}
