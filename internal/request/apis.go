package request

import (
	"github.com/tidwall/gjson"

	"github.com/stellwerk/stellwerk/internal/apierr"
	"github.com/stellwerk/stellwerk/internal/jsonscan"
)

// The endpoints stellwerk routes, as the policy input names them
// (input.request.api) and the catalog's capabilities list them.
const (
	APIChat        = "chat"
	APIEmbeddings  = "embeddings"
	APICompletions = "completions"
	// APIResponses is the Responses API, translated to chat completions
	// before it is parsed (translate.ResponsesToChat).
	APIResponses = "responses"
	// APIMessages is Anthropic's Messages API, translated to chat
	// completions (translate.MessagesToChat) for classification and
	// decision; an Anthropic-wire provider gets the request as sent.
	APIMessages = "messages"
)

// Paths of the routed endpoints.
const (
	PathChat        = "/v1/chat/completions"
	PathEmbeddings  = "/v1/embeddings"
	PathCompletions = "/v1/completions"
	PathResponses   = "/v1/responses"
	PathMessages    = "/v1/messages"
	// PathCountTokens counts a Messages request's input tokens: stellwerk
	// answers it, no provider.
	PathCountTokens = "/v1/messages/count_tokens"
)

// APIOf is the endpoint a client path asks for, "" for one stellwerk does
// not route.
func APIOf(path string) string {
	switch path {
	case PathChat:
		return APIChat
	case PathEmbeddings:
		return APIEmbeddings
	case PathCompletions:
		return APICompletions
	case PathResponses:
		return APIResponses
	case PathMessages:
		return APIMessages
	}
	return ""
}

// Parse validates a request of one endpoint (an API constant). A
// Responses API or Messages API body comes translated to chat completions:
// it is parsed as chat and keeps its API.
func Parse(api string, body []byte) (Chat, error) {
	switch api {
	case APIEmbeddings:
		return ParseEmbeddings(body)
	case APICompletions:
		return ParseCompletions(body)
	case APIResponses, APIMessages:
		c, err := ParseChat(body)
		c.API = api
		return c, err
	}
	return ParseChat(body)
}

// MaxDimensions bounds an embeddings request's dimensions; no model comes
// near it.
const MaxDimensions = 1 << 16

// ParseEmbeddings validates an embeddings request (POST /v1/embeddings):
// model, input (a string, an array of strings, an array of token ids or
// an array of such arrays; never empty), encoding_format (float, base64),
// dimensions (a positive integer), user and the per-request policy.
// Other members pass through to the provider, as chat's do.
func ParseEmbeddings(body []byte) (Chat, error) {
	root, err := parseRoot(body, "embeddings")
	if err != nil {
		return Chat{}, err
	}
	c := Chat{API: APIEmbeddings, Choices: 1}
	var model, input, format, dims gjson.Result
	jsonscan.ForEach(root, func(k, v gjson.Result) bool {
		switch k.Str {
		case "model":
			model = v
		case "input":
			input = v
		case "encoding_format":
			format = v
		case "dimensions":
			dims = v
		case "policy":
			c.Policy = v
		case "metadata":
			c.MetadataObj = v // not OpenAI's here, but the provider gets it
		case "user":
			c.UserRaw = v
			if v.Type == gjson.String && len(v.Str) <= 256 {
				c.User = v.Str
			}
		default:
			c.other(k, v) // passed on as chat's are, so classified as chat's are
		}
		return true
	})
	if err := c.setModel(model); err != nil {
		return Chat{}, err
	}
	if err := checkInput(input, "input"); err != nil {
		return Chat{}, err
	}
	c.Input = input
	switch {
	case format.Type == gjson.Null:
	case format.Type != gjson.String || (format.Str != "float" && format.Str != "base64"):
		return Chat{}, apierr.Invalid("invalid_value", "encoding_format", "encoding_format must be \"float\" or \"base64\"")
	}
	if err := positiveInt(dims, "dimensions", MaxDimensions); err != nil {
		return Chat{}, err
	}
	return c, nil
}

// ParseCompletions validates a legacy completions request (POST
// /v1/completions): model, prompt (as embeddings' input), suffix, stream,
// stream_options, max_tokens, n, user and the per-request policy.
func ParseCompletions(body []byte) (Chat, error) {
	root, err := parseRoot(body, "completion")
	if err != nil {
		return Chat{}, err
	}
	c := Chat{API: APICompletions, Choices: 1}
	var model, prompt, stream, streamOptions, maxTokens, n, bestOf gjson.Result
	jsonscan.ForEach(root, func(k, v gjson.Result) bool {
		switch k.Str {
		case "model":
			model = v
		case "prompt":
			prompt = v
		case "suffix":
			c.Suffix = v
		case "stream":
			stream = v
		case "stream_options":
			streamOptions = v
			c.otherText(k, v)
		case "max_tokens":
			maxTokens = v
		case "n":
			n = v
		case "best_of":
			bestOf = v
		case "policy":
			c.Policy = v
		case "stop":
			c.StopList = v
		case "metadata":
			c.MetadataObj = v // not OpenAI's here, but the provider gets it
		case "user":
			c.UserRaw = v
			if v.Type == gjson.String && len(v.Str) <= 256 {
				c.User = v.Str
			}
		default:
			c.other(k, v) // logit_bias, echo, … as chat's
		}
		return true
	})
	if err := c.setModel(model); err != nil {
		return Chat{}, err
	}
	if err := checkInput(prompt, "prompt"); err != nil {
		return Chat{}, err
	}
	c.Input = prompt
	switch {
	case c.Suffix.Type == gjson.Null:
	case c.Suffix.Type != gjson.String:
		return Chat{}, apierr.Invalid("invalid_type", "suffix", "suffix must be a string")
	}
	switch stream.Type {
	case gjson.Null:
	case gjson.True, gjson.False:
		c.Stream = stream.Bool()
	default:
		return Chat{}, apierr.Invalid("invalid_type", "stream", "stream must be a boolean")
	}
	usage, uerr := includeUsage(streamOptions)
	if uerr != nil {
		return Chat{}, uerr
	}
	c.IncludeUsage = usage
	if err := positiveInt(maxTokens, "max_tokens", 1e9); err != nil {
		return Chat{}, err
	}
	c.MaxTokens = int(maxTokens.Num)
	if err := positiveInt(n, "n", 128); err != nil {
		return Chat{}, err
	}
	if err := positiveInt(bestOf, "best_of", 20); err != nil {
		return Chat{}, err
	}
	// Each prompt of an array gets n completions, and best_of are made
	// (and billed) to return n: the worst case is every one of them.
	c.Choices = max(int(n.Num), int(bestOf.Num), 1) * prompts(prompt)
	return c, nil
}

// prompts is how many prompts a validated prompt holds: an array of
// strings or of token id arrays is one each, a string or one token id
// array is one.
func prompts(p gjson.Result) int {
	if !p.IsArray() {
		return 1
	}
	n, one := 0, false
	jsonscan.ForEach(p, func(_, e gjson.Result) bool {
		one = e.Type == gjson.Number
		n++
		return !one
	})
	if one || n == 0 {
		return 1
	}
	return n
}

// checkInput checks an embeddings input or a completions prompt: a
// non-empty string, or a non-empty array of non-empty strings, of token
// ids, or of non-empty arrays of token ids (OpenAI's four forms; one
// array holds one form).
func checkInput(v gjson.Result, name string) *apierr.Error {
	const forms = "a string, an array of strings, an array of token ids or an array of token id arrays"
	switch {
	case !v.Exists():
		return apierr.Invalid("missing_"+name, name, "you must provide an %s parameter (%s)", name, forms)
	case v.Type == gjson.String:
		if v.Str == "" {
			return apierr.Invalid("invalid_value", name, "%s must not be empty", name)
		}
		return nil
	case !v.IsArray():
		return apierr.Invalid("invalid_type", name, "%s must be %s", name, forms)
	}
	var bad *apierr.Error
	i, kind := 0, gjson.Null // kind: String, Number, or JSON for arrays
	jsonscan.ForEach(v, func(_, e gjson.Result) bool {
		k := e.Type
		if e.IsObject() {
			k = gjson.Null // no valid element is null: refused below
		}
		switch {
		case i > 0 && k != kind:
			bad = apierr.Invalid("invalid_type", name, "%s[%d]: every element of %s must be of one kind (%s)", name, i, name, forms)
		case k == gjson.String:
			if e.Str == "" {
				bad = apierr.Invalid("invalid_value", name, "%s[%d] must not be empty", name, i)
			}
		case k == gjson.Number:
			if !tokenID(e) {
				bad = apierr.Invalid("invalid_value", name, "%s[%d] must be a token id (a non-negative integer)", name, i)
			}
		case k == gjson.JSON:
			j := 0
			jsonscan.ForEach(e, func(_, t gjson.Result) bool {
				if !tokenID(t) {
					bad = apierr.Invalid("invalid_value", name, "%s[%d][%d] must be a token id (a non-negative integer)", name, i, j)
					return false
				}
				j++
				return true
			})
			if bad == nil && j == 0 {
				bad = apierr.Invalid("invalid_value", name, "%s[%d] must not be empty", name, i)
			}
		default:
			bad = apierr.Invalid("invalid_type", name, "%s[%d] must be a string, a token id or an array of token ids", name, i)
		}
		kind = k
		i++
		return bad == nil
	})
	if bad == nil && i == 0 {
		bad = apierr.Invalid("invalid_value", name, "%s must not be empty", name)
	}
	return bad
}

func tokenID(t gjson.Result) bool {
	return t.Type == gjson.Number && t.Num >= 0 && t.Num <= 1<<31 && t.Num == float64(int64(t.Num))
}

// positiveInt checks an optional integer member in [1, max].
// includeUsage reads stream_options: an object (or null), whose
// include_usage is a boolean when set. stellwerk sets include_usage on
// every stream it meters, so anything else would be rewritten, not passed
// on (OpenAI refuses it too).
func includeUsage(v gjson.Result) (bool, *apierr.Error) {
	switch {
	case v.Type == gjson.Null:
		return false, nil
	case !v.IsObject():
		return false, apierr.Invalid("invalid_type", "stream_options", "stream_options must be an object")
	}
	switch u := v.Get("include_usage"); u.Type {
	case gjson.True, gjson.False, gjson.Null:
		return u.Type == gjson.True, nil
	}
	return false, apierr.Invalid("invalid_type", "stream_options.include_usage", "stream_options.include_usage must be a boolean")
}

func positiveInt(v gjson.Result, name string, max float64) *apierr.Error {
	if v.Type == gjson.Null {
		return nil
	}
	if v.Type != gjson.Number || v.Num != float64(int64(v.Num)) || v.Num < 1 || v.Num > max {
		return apierr.Invalid("invalid_value", name, "%s must be a positive integer (at most %d)", name, int64(max))
	}
	return nil
}

// TokenIDs reports whether an input or prompt carries token ids, which
// no classifier can read as text.
func TokenIDs(v gjson.Result) bool {
	if !v.IsArray() {
		return false
	}
	first := v.Get("0")
	return first.Type == gjson.Number || first.IsArray()
}

// Root checks what every endpoint's body must be (a JSON object, not too
// deep, each key once) for a body translated before it is parsed: the
// Messages API's, which an Anthropic-wire provider gets as sent, so a
// duplicate key it would read differently is refused on the original.
func Root(body []byte, what string) (gjson.Result, error) { return parseRoot(body, what) }
