package task

import (
	"math/bits"
	"strings"
)

// keywords maps case-folded words and two-word phrases to cue groups. Lists cover English,
// German, French, Spanish and Italian where the word is cheap to add; the linear model
// decides how much each group counts for each task.
var keywords = [numGroups]string{
	gCodeVerb: `code coding function functions method class program script implement implementation
		refactor debug bug bugs compile compiler error exception stacktrace traceback regex regexp
		sql query python javascript typescript java golang rust kotlin swift php ruby bash shell
		dockerfile kubernetes api endpoint unittest pytest algorithm recursion array arrays
		string strings list lists dictionary tuple
		funktion programm skript fonction programme fonction función programa funzione codice código
		write_function python_function write_python write_sql write_script write_code
		unit_tests segmentation_fault server http https css html git commit github docker container
		database linux terminal npm numpy pandas react flexbox nginx div
		commits squash rebase branch cron crontab workflow deploy deployment chmod permission_denied
		flask django express postgresql postgres mysql sqlite mongodb redis goroutine goroutines mutex
		haskell scala perl lua csharp terraform ansible helm yaml_file login_page`,
	gCodeWord: `def func return import const var let elif println printf console fmt self null nil
		void static public private struct impl async await lambda println len range append
		true false none int str bool float usize`,
	gMathVerb: `solve compute calculate evaluate simplify prove proof derivative differentiate integral
		integrate equation equations inequality factor factorize polynomial matrix determinant
		eigenvalues probability expected percent percentage sum product quotient remainder
		fraction ratio average mean median variance deviation theorem lemma triangle circle
		radius area perimeter volume prime divisible gcd lcm modulo logarithm limit series
		löse berechne gleichung ableitung wahrscheinlichkeit flächeninhalt
		calcule calculer résous résoudre équation dérivée intégrale probabilité
		resuelve resolver calcula calcular ecuación derivada integral probabilidad
		calcola risolvi equazione derivata integrale probabilità
		how_many how_much how_long what_percentage`,
	gTranslate: `translate translated translating translation translations translator
		übersetze übersetzen übersetzung übersetzt traduire traduis traduisez traduction
		traduce traducir traduzca tradúceme traducción traduci tradurre traduzione traduca
		render_in put_into say_in said_in written_in english_translation
		how_do_you_say how_would how_say
		vertaal vertaling traduza traduzir tradução traduz przetłumacz översätt oversæt käännä`,
	gLanguage: `english german french spanish italian portuguese dutch russian polish czech turkish
		japanese chinese korean arabic hindi swedish norwegian danish finnish greek latin
		hebrew vietnamese indonesian persian romanian hungarian ukrainian yoruba swahili
		englisch deutsch deutsche französisch spanisch italienisch
		anglais allemand français espagnol italien
		inglés alemán francés español italiano portugués
		inglese tedesco francese spagnolo
		ins_englische ins_deutsche ins_französische in_english into_english to_english
		into_german into_french into_spanish into_italian en_anglais en_français al_inglés
		al_español in_inglese in_italiano
		duits engels frans inglês alemão`,
	gSummarize: `summarize summarise summarized summary summaries summarization sum_up recap gist
		condense condensed shorten abstract tldr tl_dr takeaways key_points main_points
		boil_down executive_summary in_brief briefly
		zusammenfassen zusammenfassung fasse kurzfassung
		résume résumer résumé synthèse resumen resumir resume resúmeme
		riassumi riassunto riassumere sintetizza sintesi
		synopsis nutshell short_version status_update overview outline`,
	gExtract: `extract extracting extraction pull_out pull parse parsing find_all list_all get_all
		identify entities entity named_entities fields field extrahiere extrahieren herausziehen
		extrais extraire relève extrae extraer extráeme estrai estrarre
		scrape mentioned pick_out grab`,
	gFormat: `json yaml csv xml table tabular key_value keys array schema template columns column
		format formatted tabelle tableau tabla tabella comma_separated one_per_line`,
	gClassify: `classify classification classifier categorize categorise categorization category
		categories label labels labeling tag tags sentiment sentiments intent topic
		detect determine_whether is_this_spam which_category which_language rate rating
		klassifiziere klassifizieren kategorisiere ordne einordnen
		classe classer classifie classez catégorise catégoriser
		clasifica clasificar categoriza etiqueta etiquetar
		classifica classificare categorizza etichetta
		severity priority genre mood emotion clickbait positive_or or_negative or_not assign`,
	gLabel: `positive negative neutral spam ham toxic sarcastic sincere urgent formal informal
		positiv negativ neutral positif négatif positivo negativo neutro
		fake legitimate phishing fact opinion
		genuine sarcasm anger joy sadness fear`,
	gWrite: `write compose draft pen create invent imagine continue
		schreib schreibe verfasse dichte écris écrire rédige imagine escribe escribir redacta
		scrivi scrivere componi inventa`,
	gCreative: `poem poems poetry poetic story stories tale tales lyrics song songs verse verses
		haiku limerick sonnet ballad ode fable fairy myth legend novel chapter screenplay
		script_scene monologue dialogue rhyme rhymes lullaby rap fiction narrative villanelle
		toast speech
		gedicht geschichte märchen kurzgeschichte lied reim
		slogan slogans tagline taglines backstory caption eulogy invitation werbetext
		poème histoire conte chanson récit nouvelle
		poema cuento relato canción historia microrrelato letra
		poesia racconto filastrocca fiaba canzone storia`,
	gReasoning: `riddle puzzle logic logical deduce deduction infer inference conclude conclusion
		premise hypothesis entailed entail entailment implies valid argument syllogism
		step_by_step think_carefully reasoning reason explain_your_reasoning
		rätsel logik schlussfolgerung
		énigme logique déduire raisonnement
		acertijo adivinanza lógica razonamiento
		indovinello logica ragionamento ragiona
		truth lying liar lies taller shorter older younger`,
	gQuestion: `what who when where why which how whom whose
		wer wann wo warum wieso welche welcher wie
		qu'est quel quelle quels qui quand où pourquoi comment
		qué quién cuál cuándo dónde por_qué cómo cuántos
		che cosa chi quale quando dove perché quanti
		me_about`,
	gGreeting: `hi hello hey hiya howdy thanks thank cheers lol haha morning evening night bye
		hallo servus moin danke tschüss bonjour salut merci bonsoir hola gracias adiós
		buenos ciao grazie buongiorno buonasera
		how_are good_morning good_night what's_up do_you are_you have_you your_favorite you_like
		your_day your_favourite you're`,
	gRoleplay: `roleplay role_play pretend act_as you_are persona character impersonate
		play_the take_the_role be_my
		you_play play_a in_character rehearse`,
	gPersonal: `i i'm me my myself mine we our us feel feeling felt sad lonely happy nervous
		tired bored excited worried stressed ich mir mich mein meine je moi mon ma mes yo mi
		me estoy io mio mia sono`,
	gAdvice: `should advice tips tip recommend recommendation suggest suggestions help
		conseil conseils consejo consejos consiglio consigli tipps rat ratschlag`,
}

// Entries with '_' are phrases. Only their last two words are matched (as a bigram); an
// apostrophe splits a word, so "what's_up" matches the bigram "s up".

type kwEntry struct {
	key  uint64
	mask uint32
}

const kwSize = 2048 // power of two, at most half full

var kwTable = func() (t [kwSize]kwEntry) {
	for g, list := range keywords {
		for _, entry := range strings.Fields(list) {
			words := splitWords(strings.ReplaceAll(entry, "_", " "))
			var key uint64
			switch len(words) {
			case 0:
				continue
			case 1:
				key = words[0]
			default:
				key = bigram(words[len(words)-2], words[len(words)-1])
			}
			insertKeyword(&t, key, uint32(1)<<g)
		}
	}
	return t
}()

func insertKeyword(t *[kwSize]kwEntry, key uint64, mask uint32) {
	for i := mix(key) & (kwSize - 1); ; i = (i + 1) & (kwSize - 1) {
		switch t[i].key {
		case key:
			t[i].mask |= mask
			return
		case 0:
			t[i] = kwEntry{key: key, mask: mask}
			return
		}
	}
}

// kwBloom is a one-hash filter over the table's keys; most words are not keywords and stop
// here without touching the larger table.
var kwBloom = func() (b [kwBloomBits / 64]uint64) {
	for _, e := range kwTable {
		if e.key != 0 {
			i := mix(e.key) >> (64 - kwBloomLog)
			b[i>>6] |= 1 << (i & 63)
		}
	}
	return b
}()

const (
	kwBloomLog  = 13
	kwBloomBits = 1 << kwBloomLog
)

// lookupKeyword returns the groups of a word or bigram hash w whose mix is m.
func lookupKeyword(w, m uint64) uint32 {
	if i := m >> (64 - kwBloomLog); kwBloom[i>>6]&(1<<(i&63)) == 0 {
		return 0
	}
	for i := m & (kwSize - 1); ; i = (i + 1) & (kwSize - 1) {
		e := &kwTable[i]
		if e.key == w {
			return e.mask
		}
		if e.key == 0 {
			return 0
		}
	}
}

// splitWords hashes the words of s exactly as the scanner does (see scanner.scan).
func splitWords(s string) []uint64 {
	var out []uint64
	var h uint64
	in, digit, c3 := false, false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch byteClass[c] {
		case bUpper:
			c += 'a' - 'A'
			fallthrough
		case bLower:
			h = bits.RotateLeft64(h, 5) ^ uint64(c)
			in, digit, c3 = true, false, false
		case bDigit:
			if !digit {
				h = bits.RotateLeft64(h, 5) ^ '0'
			}
			in, digit, c3 = true, true, false
		case bHigh:
			if c3 && c >= 0x80 && c <= 0x9e && c != 0x97 {
				c += 0x20
			}
			h = bits.RotateLeft64(h, 5) ^ uint64(c)
			in, digit, c3 = true, false, c == 0xc3
		default:
			if in {
				out = append(out, h)
			}
			h, in, digit, c3 = 0, false, false, false
		}
	}
	if in {
		out = append(out, h)
	}
	return out
}
