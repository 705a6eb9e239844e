package injection

import "strings"

// Word classes used by the cue patterns. A word may be in several classes;
// a class is one bit of a uint64, so there are at most 64.
var classWords = [...]string{
	cIgnore:    "ignore ignoring disregard disregarding forget forgetting skip override overriding bypass bypassing overlook discard abandon neglect",
	cPrev:      "previous prior above earlier preceding former initial original preset default existing old past system given",
	cInstr:     "instructions instruction rules directives directive prompts prompt guidelines commands constraints programming policies restrictions guidance orders",
	cDo:        "do",
	cAnything:  "anything",
	cNow:       "now",
	cModeAdj:   "developer dev jailbreak jailbroken god unrestricted unfiltered uncensored evil chaos anarchy dan admin debug sudo maintenance",
	cMode:      "mode",
	cJailbreak: "jailbreak jailbroken jailbreaking jailbreaks",
	cWithout:   "without no zero free freed unbound unrestricted unfiltered uncensored beyond bypass ignore ignoring break breaking",
	cRestr:     "restrictions restriction filters filter filtering censorship censored censor limitations limits boundaries rules guidelines constraints morals ethics moral ethical policies policy safeguards confines warnings disclaimers apologies refusals limitation bounds principles",
	cNeg:       "not dont doesnt never no cannot cant wont",
	cBound:     "bound restricted limited obligated confined constrained censored programmed tied",
	cLonger:    "longer",
	cAbide:     "abide follow adhere comply obey",
	cStay:      "stay remain staying keep break breaking",
	cIn:        "in out of",
	cCharacter: "character",
	cTwo:       "two 2 both dual",
	cResponses: "responses answers ways paragraphs outputs replies versions personalities",
	cVendor:    "openai openais chatgpt chatgpts anthropic gpt",
	cPolicy:    "policy policies guidelines rules content restrictions filters",
	cReveal:    "repeat print reveal show output display leak disclose dump spell recite tell",
	cSecret:    "system initial hidden secret above previous original full entire internal",
	cPromptW:   "prompt prompts instructions message text words",
	cAmoral:    "amoral unethical immoral unfiltered uncensored unrestricted amorality lawless",
	cRefuse:    "refuse refuses refusing decline declines reject deny",
	cFrom:      "from",
	cOn:        "on",
	cYou:       "you youre",
	cAre:       "are re will",
	cFreeW:     "free freed liberated unleashed unchained released",
	cEnable:    "enable enabled activate activated unlock unlocked enter entering",
	cTokens:    "tokens token points",
	cLose:      "lose lost deducted deduct loses",
	cEdu:       "educational research hypothetical fictional academic",
	cPurpose:   "purposes purpose scenario world setting",
	cNew:       "new updated real actual true",
	cRulesW:    "instructions rules task directive",
	cIllegal:   "illegal harmful dangerous explicit offensive nsfw malicious",
	cContent:   "content information activities things",
	cLock:      "\U0001f513 \U0001f512",
	cAI:        "ai",
	cLanguage:  "language",
	cModel:     "model",
	cAs:        "as",
	cAn:        "an",
}

const (
	cIgnore = iota
	cPrev
	cInstr
	cDo
	cAnything
	cNow
	cModeAdj
	cMode
	cJailbreak
	cWithout
	cRestr
	cNeg
	cBound
	cLonger
	cAbide
	cStay
	cIn
	cCharacter
	cTwo
	cResponses
	cVendor
	cPolicy
	cReveal
	cSecret
	cPromptW
	cAmoral
	cRefuse
	cFrom
	cOn
	cYou
	cAre
	cFreeW
	cEnable
	cTokens
	cLose
	cEdu
	cPurpose
	cNew
	cRulesW
	cIllegal
	cContent
	cLock
	cAI
	cLanguage
	cModel
	cAs
	cAn
	numClasses
)

// cue is a sequence of word classes matched in order, with at most gap
// other words between consecutive ones. prior is the weight training pulls
// the cue towards: the data decides for cues it sees often, while a cue it
// hardly sees (system-prompt exfiltration, encoded payloads) keeps the
// strength it was written with instead of fading to zero.
type cue struct {
	name  string
	slots []int
	gap   int32
	prior float32
}

// cues are the hand-written families. Their names are what Result.Rule
// reports; each has a weight learned with the lexical model.
var cues = [...]cue{
	{"ignore_previous_instructions", []int{cIgnore, cPrev, cInstr}, 3, 4},
	{"ignore_instructions", []int{cIgnore, cInstr}, 2, 3},
	{"new_instructions", []int{cNew, cRulesW}, 0, 2},
	{"do_anything_now", []int{cDo, cAnything, cNow}, 0, 4},
	{"special_mode", []int{cModeAdj, cMode}, 1, 3},
	{"enable_mode", []int{cEnable, cModeAdj}, 2, 2},
	{"jailbreak_term", []int{cJailbreak}, 0, 3},
	{"without_restrictions", []int{cWithout, cRestr}, 2, 3},
	{"not_bound", []int{cNeg, cBound}, 2, 2},
	{"no_longer_bound", []int{cNeg, cLonger, cBound}, 2, 3},
	{"need_not_abide", []int{cNeg, cAbide}, 3, 2},
	{"stay_in_character", []int{cStay, cIn, cCharacter}, 1, 3},
	{"dual_response", []int{cTwo, cResponses}, 2, 2},
	{"lock_marker", []int{cLock}, 0, 3},
	{"policy_reference", []int{cVendor, cPolicy}, 2, 2},
	{"system_prompt_exfiltration", []int{cReveal, cSecret, cPromptW}, 2, 4},
	{"amoral_persona", []int{cAmoral}, 0, 3},
	{"never_refuse", []int{cNeg, cRefuse}, 2, 3},
	{"from_now_on", []int{cFrom, cNow, cOn}, 0, 1},
	{"you_are_free", []int{cYou, cAre, cFreeW}, 2, 2},
	{"token_penalty", []int{cTokens, cLose}, 3, 2},
	{"fictional_framing", []int{cEdu, cPurpose}, 1, 1},
	{"harmful_content", []int{cIllegal, cContent}, 2, 1},
	{"ai_language_model", []int{cAs, cAn, cAI, cLanguage, cModel}, 0, 1},
	{"encoded_payload", nil, 0, 1.5}, // set by the byte scanner, not by words
}

const (
	numCues    = len(cues)
	cueEncoded = numCues - 1
	maxSlots   = 5
)

// slotUse says that a class advances cue c from slot s to s+1.
type slotUse struct {
	cue, slot int32
}

var (
	classUses [numClasses][]slotUse
	classTab  [classTabSize]classEntry
)

const classTabSize = 1024 // power of two, well above the number of words

type classEntry struct {
	hash uint32
	mask uint64
}

func init() {
	for c, words := range classWords {
		for _, w := range strings.Fields(words) {
			addClass(wordHash(w), uint64(1)<<c)
		}
	}
	for ci, cu := range cues {
		if len(cu.slots) > maxSlots {
			panic("injection: cue " + cu.name + " has too many slots")
		}
		for s, c := range cu.slots {
			classUses[c] = append(classUses[c], slotUse{int32(ci), int32(s)})
		}
	}
}

func addClass(h uint32, bit uint64) {
	for k := h & (classTabSize - 1); ; k = (k + 1) & (classTabSize - 1) {
		e := &classTab[k]
		if e.mask == 0 {
			e.hash, e.mask = h, bit
			return
		}
		if e.hash == h {
			e.mask |= bit
			return
		}
	}
}

func classMask(h uint32) uint64 {
	for k := h & (classTabSize - 1); ; k = (k + 1) & (classTabSize - 1) {
		e := &classTab[k]
		if e.mask == 0 {
			return 0
		}
		if e.hash == h {
			return e.mask
		}
	}
}

// wordHash is the hash the scanner computes for a lower-case word.
func wordHash(w string) uint32 {
	h := uint32(fnvOffset)
	for k := 0; k < len(w); k++ {
		h = (h ^ uint32(w[k])) * fnvPrime
	}
	return h
}

const (
	fnvOffset = 2166136261
	fnvPrime  = 16777619
)
