package pii

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
)

// Synthetic card and phone data: a generator with a fixed seed, for measuring
// the number detectors on the layouts people type (cards in groups with
// spaces or dashes, Amex 4-6-5, international phone numbers in every common
// national style) against numbers that look alike but are not personal data
// (order and invoice numbers, dates, timestamps, version strings, ISBNs and
// EANs, IP addresses, amounts, coordinates, card-shaped numbers that fail
// the Luhn check).
//
// The sentence frames come in two disjoint halves: SynthDev frames were used
// while developing the detectors, SynthHeldOut frames only to report. The
// value layouts are shared (a layout is what the detector must know); the
// digits are drawn afresh from the seed.

// SynthSplit selects the frames of the synthetic set.
type SynthSplit int

const (
	SynthDev SynthSplit = iota
	SynthHeldOut
)

// SynthSeed is the seed of the reported figures (docs/classify.md).
const SynthSeed = 19

// SynthSentence is one generated sentence and the gold spans in it (credit_card
// and phone only; a negative sentence has none).
type SynthSentence struct {
	Text string
	Gold []Match
	// Kind names the generator: "card:4-4-4-4 space", "phone:+44", "neg:isbn", …
	Kind string
}

type synthGen struct {
	r *rand.Rand
}

func (g *synthGen) digits(n int) string {
	var b strings.Builder
	for range n {
		b.WriteByte(byte('0' + g.r.IntN(10)))
	}
	return b.String()
}

// nz is n digits, the first not zero.
func (g *synthGen) nz(n int) string {
	return string(rune('1'+g.r.IntN(9))) + g.digits(n-1)
}

// fill replaces every '#' of layout with a random digit and every 'N' with a
// non-zero one.
func (g *synthGen) fill(layout string) string {
	b := []byte(layout)
	for i, c := range b {
		switch c {
		case '#':
			b[i] = byte('0' + g.r.IntN(10))
		case 'N':
			b[i] = byte('1' + g.r.IntN(9))
		}
	}
	return string(b)
}

func luhnDigit(body string) byte {
	sum := 0
	dbl := true
	for k := len(body) - 1; k >= 0; k-- {
		v := int(body[k] - '0')
		if dbl {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		dbl = !dbl
	}
	return byte('0' + (10-sum%10)%10)
}

// cardNumber draws a valid number of a scheme: prefix, then random digits,
// then the Luhn digit; valid false makes the last digit wrong.
func (g *synthGen) cardNumber(prefix string, n int, valid bool) string {
	body := prefix + g.digits(n-len(prefix)-1)
	c := luhnDigit(body)
	if !valid {
		c = byte('0' + (int(c-'0')+1+g.r.IntN(9))%10)
	}
	return body + string(c)
}

func group(num string, lens []int, sep string) string {
	var parts []string
	for _, l := range lens {
		parts = append(parts, num[:l])
		num = num[l:]
	}
	if num != "" {
		parts = append(parts, num)
	}
	return strings.Join(parts, sep)
}

var cardSchemes = []struct {
	prefix func(g *synthGen) string
	n      int
	lens   []int
	name   string
}{
	{func(*synthGen) string { return "4" }, 16, []int{4, 4, 4, 4}, "visa"},
	{func(g *synthGen) string { return fmt.Sprint(51 + g.r.IntN(5)) }, 16, []int{4, 4, 4, 4}, "mastercard"},
	{func(g *synthGen) string { return fmt.Sprint(2221 + g.r.IntN(500)) }, 16, []int{4, 4, 4, 4}, "mastercard-2"},
	{func(g *synthGen) string { return []string{"34", "37"}[g.r.IntN(2)] }, 15, []int{4, 6, 5}, "amex"},
	{func(*synthGen) string { return "6011" }, 16, []int{4, 4, 4, 4}, "discover"},
	{func(g *synthGen) string { return fmt.Sprint(3528 + g.r.IntN(62)) }, 16, []int{4, 4, 4, 4}, "jcb"},
	{func(*synthGen) string { return "36" }, 14, []int{4, 6, 4}, "diners"},
	{func(*synthGen) string { return "4" }, 19, []int{4, 4, 4, 4, 3}, "visa-19"},
}

// phoneLayouts are international numbers as people write them ('#' any digit,
// 'N' a non-zero digit).
var phoneLayouts = []struct{ cc, layout string }{
	{"+44", "+44 20 N### ####"}, {"+44", "+44 (0)20 N### ####"}, {"+44", "+44 7N## ######"}, {"+44", "0044 20 N### ####"},
	{"+44", "+44 (0) 161 N## ####"},
	{"+49", "+49 (0)30 N#####"}, {"+49", "+49 30 N######"}, {"+49", "0049 30 N######"}, {"+49", "+49 15N ########"},
	{"+49", "+49-89-N######"}, {"+49", "+49 (0)89 N### ###"}, {"+49", "0049 (0)40 N#######"},
	{"+33", "+33 1 N# ## ## ##"}, {"+33", "+33 (0)6 N# ## ## ##"}, {"+33", "0033 6 N# ## ## ##"}, {"+33", "+33.1.N#.##.##.##"},
	{"+1", "+1 (N##) N##-####"}, {"+1", "+1 N##-N##-####"}, {"+1", "+1.N##.N##.####"}, {"+1", "+1 N## N## ####"},
	{"+1", "(N##) N##-####"}, {"+1", "+1-N##-N##-####"},
	{"+81", "+81-3-N###-####"}, {"+81", "+81 90 N### ####"}, {"+81", "+81 (0)3 N### ####"},
	{"+39", "+39 06 N### ####"}, {"+39", "+39 3N# ### ####"}, {"+39", "0039 02 N#######"},
	{"+34", "+34 6N# ## ## ##"}, {"+34", "+34 91 N## ## ##"},
	{"+31", "+31 20 N## ####"}, {"+31", "+31 (0)6 N#######"},
	{"+41", "+41 44 N## ## ##"}, {"+43", "+43 1 N######"}, {"+48", "+48 22 N## ## ##"},
	{"+46", "+46 8 N## ### ##"}, {"+353", "+353 1 N## ####"}, {"+91", "+91 9#### #####"},
	{"+61", "+61 2 N### ####"}, {"+55", "+55 11 9####-####"}, {"+45", "+45 N# ## ## ##"},
	{"+32", "+32 2 N## ## ##"}, {"+351", "+351 21 N## ####"}, {"+358", "+358 9 N### ####"},
	{"+44", "+44 20 N### #### ext. ###"}, {"+1", "+1 (N##) N##-#### x###"},
}

// Sentence frames; "{}" is where the value goes.
var (
	cardFrames = [2][]string{
		{
			"Please charge the deposit to my card {}.",
			"Card number: {} (expires 09/27)",
			"I paid with {} but the booking still shows as unpaid.",
			"hi, can you update my payment method to {} thanks",
			"Kreditkarte {} wurde zweimal belastet.",
			"The customer read out {} over the phone.",
			"Refund to card ending in the number {}, please.",
			"My Visa is {}, the old one was cancelled.",
		},
		{
			"Use {} for the hotel guarantee.",
			"Payment details -- {} -- CVC sent separately.",
			"Why was {} declined at checkout?",
			"numéro de carte : {}",
			"Tarjeta {} caducada, por favor actualizar.",
			"Billing card on file: {}. Please do not store it in the ticket.",
			"I typed {} into the form and got an error.",
			"Customer card {} flagged for review.",
		},
	}
	phoneFrames = [2][]string{
		{
			"Call me at {} after 6pm.",
			"You can reach our London office on {}.",
			"Tel.: {}",
			"My number is {}, text me when you land.",
			"WhatsApp {} if anything changes.",
			"Kontakt: {} (Mo-Fr 9-17 Uhr)",
			"For bookings dial {} or write to us.",
			"Emergency contact: {}",
		},
		{
			"Please ring {} to confirm the appointment.",
			"Mobile {} — available all weekend.",
			"Le standard est joignable au {}.",
			"llámame al {} cuando puedas",
			"Support hotline {} (24/7).",
			"He left {} as a callback number.",
			"phone: {}",
			"Fax or phone, both go to {}.",
		},
	}
)

// negatives are look-alike numbers with their own context, each a generator of
// one sentence without personal data. Their two halves of frames are split like
// the positives'.
var negatives = []struct {
	name   string
	frames [2][]string
	value  func(g *synthGen) string
}{
	{"order number", [2][]string{
		{"Order #{} has shipped.", "Your order no. {} is ready for pickup.", "Bestellnummer {} storniert."},
		{"Order {} was refunded yesterday.", "Re: order {} - missing item", "Commande n° {} expédiée."}},
		func(g *synthGen) string {
			return []string{g.nz(8), g.nz(10), g.fill("N###-####-####"), g.fill("N##-#######-#######")}[g.r.IntN(4)]
		}},
	{"invoice number", [2][]string{
		{"Invoice INV-{} is overdue.", "See invoice {} attached."},
		{"Rechnung Nr. {} bezahlt.", "Please quote invoice {} on the transfer."}},
		func(g *synthGen) string { return fmt.Sprintf("20%02d-%s", 18+g.r.IntN(8), g.digits(6)) }},
	{"date", [2][]string{
		{"The contract starts on {}.", "Due date: {}", "Meeting moved to {}."},
		{"Born {}.", "Last login {}", "Delivery expected {}."}},
		func(g *synthGen) string {
			y, m, d := 1990+g.r.IntN(40), 1+g.r.IntN(12), 1+g.r.IntN(28)
			return []string{fmt.Sprintf("%d-%02d-%02d", y, m, d), fmt.Sprintf("%02d.%02d.%d", d, m, y),
				fmt.Sprintf("%02d/%02d/%d", m, d, y), fmt.Sprintf("%d/%d/%d", d, m, y)}[g.r.IntN(4)]
		}},
	{"timestamp", [2][]string{
		{"Error logged at {}.", "{} request received"},
		{"Backup finished {}", "Event time: {}"}},
		func(g *synthGen) string {
			y, m, d, h, mi, s := 2015+g.r.IntN(12), 1+g.r.IntN(12), 1+g.r.IntN(28), g.r.IntN(24), g.r.IntN(60), g.r.IntN(60)
			return []string{fmt.Sprintf("%d-%02d-%02dT%02d:%02d:%02dZ", y, m, d, h, mi, s),
				fmt.Sprintf("%d-%02d-%02d %02d:%02d:%02d", y, m, d, h, mi, s),
				fmt.Sprintf("%d-%02d-%02d %02d:%02d:%02d.%03d", y, m, d, h, mi, s, g.r.IntN(1000)),
				fmt.Sprint(1500000000 + g.r.IntN(300000000))}[g.r.IntN(4)]
		}},
	{"version", [2][]string{
		{"Upgrade to version {} fixes it.", "Running kernel {} here."},
		{"Released v{} today.", "Build {} is the last good one."}},
		func(g *synthGen) string {
			return []string{fmt.Sprintf("%d.%d.%d", g.r.IntN(20), g.r.IntN(40), g.r.IntN(200)),
				fmt.Sprintf("10.0.%d.%d", 10000+g.r.IntN(20000), g.r.IntN(3000)),
				fmt.Sprintf("%d.%d.%d-%d", 1+g.r.IntN(5), g.r.IntN(30), g.r.IntN(30), g.r.IntN(100))}[g.r.IntN(3)]
		}},
	{"isbn", [2][]string{
		{"ISBN {}", "The book (ISBN {}) is out of print."},
		{"Cite it as ISBN-13: {}.", "ordered {} from the library"}},
		func(g *synthGen) string {
			body := "978" + g.digits(9)
			sum := 0
			for k, c := range body {
				w := 1
				if k%2 == 1 {
					w = 3
				}
				sum += w * int(c-'0')
			}
			isbn := body + string(rune('0'+(10-sum%10)%10))
			return []string{isbn, group(isbn, []int{3, 1, 2, 6, 1}, "-"), group(isbn, []int{3, 2, 3, 4, 1}, "-")}[g.r.IntN(3)]
		}},
	{"ean", [2][]string{
		{"EAN {} out of stock.", "Barcode: {}"},
		{"SKU {} reordered.", "GTIN {}"}},
		func(g *synthGen) string {
			body := "40" + g.digits(10)
			sum := 0
			for k, c := range body {
				w := 1
				if k%2 == 1 {
					w = 3
				}
				sum += w * int(c-'0')
			}
			return body + string(rune('0'+(10-sum%10)%10))
		}},
	{"ip address", [2][]string{
		{"Connection refused from {}.", "Set the gateway to {}."},
		{"ping {} times out", "Server IP {}"}},
		func(g *synthGen) string {
			return fmt.Sprintf("%d.%d.%d.%d", 1+g.r.IntN(223), g.r.IntN(256), g.r.IntN(256), 1+g.r.IntN(254))
		}},
	{"amount", [2][]string{
		{"Total: {}", "Revenue reached {} this year."},
		{"The budget is {}.", "They paid {} for the flat."}},
		func(g *synthGen) string {
			return []string{fmt.Sprintf("$%d,%03d,%03d.%02d", 1+g.r.IntN(99), g.r.IntN(1000), g.r.IntN(1000), g.r.IntN(100)),
				fmt.Sprintf("EUR %d %03d %03d", 1+g.r.IntN(99), g.r.IntN(1000), g.r.IntN(1000)),
				fmt.Sprintf("%d.%03d.%03d €", 1+g.r.IntN(99), g.r.IntN(1000), g.r.IntN(1000))}[g.r.IntN(3)]
		}},
	{"coordinates", [2][]string{
		{"Meet at {}.", "GPS: {}"},
		{"The drone landed at {}.", "coords {}"}},
		func(g *synthGen) string {
			return fmt.Sprintf("%d.%04d, %d.%04d", 30+g.r.IntN(30), g.r.IntN(10000), g.r.IntN(30), g.r.IntN(10000))
		}},
	{"card-shaped, fails Luhn", [2][]string{
		{"Reference {} (not a card).", "Voucher code {}"},
		{"Gift card {} balance?", "Membership no. {}"}},
		func(g *synthGen) string {
			return group(g.cardNumber("4", 16, false), []int{4, 4, 4, 4}, []string{" ", "-"}[g.r.IntN(2)])
		}},
	{"time range", [2][]string{
		{"Open {} on weekdays.", "Shift: {}"},
		{"Office hours {}", "Quiet hours {}."}},
		func(g *synthGen) string {
			return fmt.Sprintf("%02d:%02d-%02d:%02d", 6+g.r.IntN(4), 15*g.r.IntN(4), 16+g.r.IntN(6), 15*g.r.IntN(4))
		}},
	{"postal code", [2][]string{
		{"Ship to ZIP {}.", "PLZ {} Berlin"},
		{"Postcode {}", "zip code {}"}},
		func(g *synthGen) string {
			return []string{g.fill("N####-####"), g.fill("N####"), g.fill("NN-###")}[g.r.IntN(3)]
		}},
	{"tracking number", [2][]string{
		{"Tracking: {}", "Parcel {} delivered."},
		{"Sendungsnummer {}", "Track {} on the carrier site."}},
		func(g *synthGen) string {
			return []string{"1Z" + g.fill("###AA##########"), "JJD" + g.digits(18), g.nz(12), g.nz(20)}[g.r.IntN(4)]
		}},
}

// GenerateSynthetic draws n positive card sentences, n positive phone
// sentences and n negative sentences from the frames of one split, with seed.
func GenerateSynthetic(seed uint64, split SynthSplit, n int) []SynthSentence {
	g := &synthGen{r: rand.New(rand.NewPCG(seed, uint64(split)+0x5eed))}
	var out []SynthSentence
	place := func(frame, value, typ, kind string) SynthSentence {
		i := strings.Index(frame, "{}")
		s := SynthSentence{Text: frame[:i] + value + frame[i+2:], Kind: kind}
		if typ != "" {
			s.Gold = []Match{{typ, i, i + len(value)}}
		}
		return s
	}
	pick := func(fs []string) string { return fs[g.r.IntN(len(fs))] }
	for range n {
		sc := cardSchemes[g.r.IntN(len(cardSchemes))]
		num := g.cardNumber(sc.prefix(g), sc.n, true)
		sep := []string{" ", "-", ""}[g.r.IntN(3)]
		layout := sc.name + " plain"
		if sep != "" {
			num = group(num, sc.lens, sep)
			layout = fmt.Sprintf("%s %q", sc.name, sep)
		}
		out = append(out, place(pick(cardFrames[split]), num, TypeCreditCard, "card:"+layout))
	}
	for range n {
		l := phoneLayouts[g.r.IntN(len(phoneLayouts))]
		out = append(out, place(pick(phoneFrames[split]), g.fill(l.layout), TypePhone, "phone:"+l.cc))
	}
	for range n {
		neg := negatives[g.r.IntN(len(negatives))]
		out = append(out, place(pick(neg.frames[split]), neg.value(g), "", "neg:"+neg.name))
	}
	return out
}

// SynthReport is precision and recall of the card and phone detectors on
// generated sentences. A detection is a true positive when it overlaps a gold
// span of its type (the same rule as EvaluatePresidio).
type SynthReport struct {
	Seed      uint64  `json:"seed"`
	Split     string  `json:"split"`
	Sentences int     `json:"sentences"`
	Scores    []Score `json:"scores"`
	// Errors lists the kinds of the sentences with a miss or a false
	// detection, with counts; the values are synthetic, so they are shown.
	Errors map[string]int `json:"errors"`
	// Examples holds up to 20 wrong sentences, for development.
	Examples []string `json:"examples,omitempty"`
}

// EvaluateSynthetic generates n sentences of each kind with seed from the
// frames of split and scores credit_card and phone detections.
func EvaluateSynthetic(seed uint64, split SynthSplit, n int) *SynthReport {
	sents := GenerateSynthetic(seed, split, n)
	rep := &SynthReport{Seed: seed, Split: [...]string{"dev", "held-out"}[split], Sentences: len(sents), Errors: map[string]int{}}
	scores := map[string]*Score{TypeCreditCard: {Type: TypeCreditCard}, TypePhone: {Type: TypePhone}}
	var found []Match
	for _, s := range sents {
		found = Detect(s.Text, found[:0])
		wrong := false
		for _, gs := range s.Gold {
			hit := false
			for _, m := range found {
				hit = hit || m.Type == gs.Type && m.Start < gs.End && gs.Start < m.End
			}
			sc := scores[gs.Type]
			sc.Gold++
			count(sc, hit)
			wrong = wrong || !hit
		}
		for _, m := range found {
			sc, ok := scores[m.Type]
			if !ok {
				continue
			}
			sc.Detections++
			hit := false
			for _, gs := range s.Gold {
				hit = hit || m.Type == gs.Type && m.Start < gs.End && gs.Start < m.End
			}
			if !hit {
				sc.FP++
				wrong = true
			}
		}
		if wrong {
			rep.Errors[s.Kind]++
			if len(rep.Examples) < 20 {
				rep.Examples = append(rep.Examples, fmt.Sprintf("%s: %q → %v", s.Kind, s.Text, found))
			}
		}
	}
	for _, t := range []string{TypeCreditCard, TypePhone} {
		scores[t].finish()
		rep.Scores = append(rep.Scores, *scores[t])
	}
	return rep
}

// Markdown renders the report as the table in docs/classify.md.
func (r *SynthReport) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s frames, seed %d: %d sentences (a third cards, a third phones, a third look-alike negatives).\n\n", r.Split, r.Seed, r.Sentences)
	table(&b, "Overlap match", r.Scores)
	b.WriteString("Sentences with an error, by generator:")
	if len(r.Errors) == 0 {
		b.WriteString(" none")
	}
	for _, k := range slices.Sorted(maps.Keys(r.Errors)) {
		fmt.Fprintf(&b, " %s %d;", k, r.Errors[k])
	}
	b.WriteString("\n")
	return b.String()
}
