// Package csvcell keeps CSV exports from being read as spreadsheet
// formulas: the spend ledger's users and tags and the feedback's comments
// are a client's or an end user's word.
package csvcell

import "strings"

// Text is v as a CSV cell a spreadsheet shows as text: a value beginning
// with =, +, -, @, a tab or a carriage return gets a leading apostrophe.
// "=HYPERLINK(…)" was a live formula in the FinOps team's spreadsheet
// (the red team of the end-user dimension).
func Text(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}
