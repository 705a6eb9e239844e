package ledger

import (
	"math"
	"strconv"
)

// MicroEUR is an amount of money in millionths of a euro. Counters add
// integers, so a month of small charges sums exactly; one request's cost
// is rounded once, when it enters the ledger.
type MicroEUR int64

// FromEUR converts a cost in EUR (meter.Charge.EUR, catalog.Model.CostEUR)
// to the nearest micro-euro, and a positive amount under half of one to
// one: a charge is never rounded to nothing (a helper's embeddings at 0.09
// µEUR each were free in the ledger, the budgets and the metrics).
// Negative and NaN amounts are 0.
func FromEUR(eur float64) MicroEUR {
	if !(eur > 0) {
		return 0
	}
	return max(1, MicroEUR(math.Round(eur*1e6)))
}

// CeilEUR converts a worst-case estimate, rounding up so that a
// reservation never holds less than the estimate.
func CeilEUR(eur float64) MicroEUR {
	if !(eur > 0) {
		return 0
	}
	return MicroEUR(math.Ceil(eur*1e6 - 1e-6)) // 1e-6: absorb the float error of an exact amount
}

// EUR is the amount in euros, for display and the policy input.
func (m MicroEUR) EUR() float64 { return float64(m) / 1e6 }

// String formats the amount in EUR with six decimals.
func (m MicroEUR) String() string { return strconv.FormatFloat(m.EUR(), 'f', 6, 64) + " EUR" }
