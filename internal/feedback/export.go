package feedback

import (
	"encoding/csv"
	"encoding/json"
	"io"
	"strconv"
	"time"

	"github.com/stellwerk/stellwerk/internal/csvcell"
)

// ExportColumns are the CSV export's columns, in order.
var ExportColumns = []string{"at", "decision_id", "workspace", "route", "route_version", "arm", "model", "by", "good", "metric", "value", "comment"}

// WriteJSONL writes one vote per line without its prompt: an export is for a mean per arm,
// not for training (router train reads the prompts from the store).
func WriteJSONL(w io.Writer, es []Entry) error {
	enc := json.NewEncoder(w)
	for _, e := range es {
		e.Prompt = ""
		if err := enc.Encode(e); err != nil {
			return err
		}
	}
	return nil
}

// WriteCSV writes the votes as ExportColumns, without their prompts.
func WriteCSV(w io.Writer, es []Entry) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(ExportColumns); err != nil {
		return err
	}
	for _, e := range es {
		value, version := "", ""
		if e.Value != nil {
			value = strconv.FormatFloat(*e.Value, 'g', -1, 64)
		}
		if e.Version != 0 {
			version = strconv.FormatInt(e.Version, 10)
		}
		if err := cw.Write([]string{e.At.UTC().Format(time.RFC3339Nano), csvcell.Text(e.DecisionID), csvcell.Text(e.Workspace), csvcell.Text(e.Route), version,
			csvcell.Text(e.Arm), csvcell.Text(e.Model), csvcell.Text(e.By), strconv.FormatBool(e.Good), csvcell.Text(e.Metric), value, csvcell.Text(e.Comment)}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
