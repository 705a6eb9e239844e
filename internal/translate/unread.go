package translate

import (
	"encoding/json"

	"github.com/tidwall/gjson"
)

// UnreadMember is the member of a decision copy (ResponsesForDecision,
// MessagesForDecision) that holds what a provider taking the request as
// sent gets and the chat translation has no field for: cache_control and
// citations of Anthropic's blocks, a Responses item's id and status, a
// part's annotations, include, truncation, reasoning.summary, … The
// classifiers read it as they read any other member of a chat request
// (its JSON as text, not prompt tokens), so a secret or personal data in
// it counts; it is never sent: the edge deletes it from the translation
// a translating provider gets (Stripped), and a provider's own
// translation (ResponsesToChat, MessagesToChat) has none.
const UnreadMember = "x_stellwerk_unread"

// untranslated gathers a decision copy's UnreadMember. A nil *untranslated is a
// provider's translation: it gathers nothing.
type untranslated struct {
	raw []json.RawMessage
	// native names the first member or block of a Messages request only a
	// provider reading it as sent (Anthropic's wire) can take: thinking,
	// documents, an image in a tool result, a server tool, … ("" for none).
	native string
	// count is a token count's copy (MessagesCountForDecision): no
	// max_tokens needed.
	count bool
}

// nativeOnly records, for a decision copy, that what needs a provider
// that reads the request as sent; false for a provider's translation (u
// nil): refuse.
func (u *untranslated) nativeOnly(what string) bool {
	if u == nil {
		return false
	}
	if u.native == "" {
		u.native = what
	}
	return true
}

// add keeps v unless it is absent, null, or carries no text (a number or
// a flag).
func (u *untranslated) add(v gjson.Result) {
	if u == nil || v.Type == gjson.Null || v.Type == gjson.Number || v.Type == gjson.True || v.Type == gjson.False || !v.Exists() {
		return
	}
	u.raw = append(u.raw, json.RawMessage(v.Raw))
}

// rest keeps obj's members other than read, each as "name":value text.
func (u *untranslated) rest(obj gjson.Result, read ...string) {
	if u == nil || !obj.IsObject() {
		return
	}
	obj.ForEach(func(k, v gjson.Result) bool {
		for _, r := range read {
			if k.Str == r {
				return true
			}
		}
		if v.Type == gjson.Null {
			return true
		}
		// The member's name too: logit_bias-like maps carry text in keys.
		u.raw = append(u.raw, json.RawMessage(k.Raw), json.RawMessage(v.Raw))
		return true
	})
}

// member is the gathered text as UnreadMember's value, nil for none.
func (u *untranslated) member() json.RawMessage {
	if u == nil || len(u.raw) == 0 {
		return nil
	}
	b, _ := json.Marshal(u.raw)
	return b
}
